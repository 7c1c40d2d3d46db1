package report

import (
	"net/url"
	"testing"
	"time"

	"github.com/semko/semko/backend/access"
)

// FuzzParseRequest feeds query strings to the request decoder: it must
// never panic, and whatever it accepts must be inside the caller's scope
// with a period a report covers.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"org=bank&period=week&date=2026-11-25",
		"org=bank&site=b-north&period=custom&from=2026-01-01&to=2026-12-31&format=xlsx&lang=bg",
		"org=post&period=month",
		"org=bank&period=custom&from=2016-01-01&to=2026-01-01",
		"org=bank&period=quarter&date=2026-02-30",
		"org=ba%27nk&site=%0A&lang=ru&format=csv",
		"period=today",
	} {
		f.Add(s)
	}
	caller := access.Principal{Scope: access.Scope{Orgs: []string{"bank"}, Sites: []string{"p-one"}}}
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		r, _, err := ParseRequest(q, caller, func(string, string) *time.Location { return sofia }, now)
		if err != nil {
			if !IsRequestError(err) {
				t.Fatalf("%q: error %v is not a request error", raw, err)
			}
			return
		}
		if !caller.Scope.Allows(r.Org, r.Site) {
			t.Fatalf("%q: accepted org %q site %q outside the scope", raw, r.Org, r.Site)
		}
		if d := r.Period.End.Sub(r.Period.Start); d <= 0 || d > MaxRange {
			t.Fatalf("%q: accepted a period of %v", raw, d)
		}
		_ = r.filter()
	})
}
