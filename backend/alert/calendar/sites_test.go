package calendar

import (
	"errors"
	"testing"
	"time"
)

func TestSites(t *testing.T) {
	own := map[string]Spec{"night": {Hours: map[string]string{"mon-sun": "00:00-24:00"}}}
	zones := map[string]string{"sofia": "Europe/Sofia", "night": "UTC"}
	cs, err := NewSites(Spec{}, own, zones)
	if err != nil {
		t.Fatal(err)
	}
	// Saturday noon: closed by default, open at the site with its own
	// calendar; the default takes each site's zone.
	sat := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	if cs.Of("sofia").Open(sat) || !cs.Of("night").Open(sat) {
		t.Fatalf("sofia open %v, night open %v on Saturday", cs.Of("sofia").Open(sat), cs.Of("night").Open(sat))
	}
	// Monday 08:30 UTC is 10:30 in Sofia: open there, and not in a site
	// the fleet does not know (the default, in UTC).
	mon := time.Date(2026, 12, 7, 8, 30, 0, 0, time.UTC)
	if !cs.Of("sofia").Open(mon) || cs.Of("atlantis").Open(mon) {
		t.Fatalf("Monday 08:30 UTC: sofia open %v, unknown site open %v", cs.Of("sofia").Open(mon), cs.Of("atlantis").Open(mon))
	}
	if _, err := NewSites(Spec{}, map[string]Spec{"atlantis": {}}, zones); err == nil {
		t.Fatal("a calendar for a site not in the fleet was accepted")
	}
	if _, err := NewSites(Spec{Hours: map[string]string{"mon": "9-5"}}, nil, zones); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad default: %v, want ErrInvalid", err)
	}
}
