package templates

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/backend/alert"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func sofia(t *testing.T) func(alert.Subject) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Sofia")
	if err != nil {
		t.Fatal(err)
	}
	return func(alert.Subject) *time.Location { return loc }
}

// TestGolden renders every group in every language and compares with
// testdata/<group>.<lang>.golden (go test -update rewrites them).
func TestGolden(t *testing.T) {
	r, err := New(sofia(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range Groups() {
		for _, lang := range Langs() {
			t.Run(string(g)+"/"+lang, func(t *testing.T) {
				n := Sample(g, lang)
				if got := GroupOf(n); got != g {
					t.Fatalf("GroupOf(sample %s) = %s", g, got)
				}
				m, err := r.Render(n)
				if err != nil {
					t.Fatal(err)
				}
				if m.Lang != lang {
					t.Fatalf("rendered in %q, want %q", m.Lang, lang)
				}
				if strings.Contains(m.Subject+m.Text, "<no value>") || strings.Contains(m.Subject, "\n") {
					t.Fatalf("bad rendering:\n%s\n%s", m.Subject, m.Text)
				}
				got := "Subject: " + m.Subject + "\n\n" + m.Text
				path := filepath.Join("testdata", string(g)+"."+lang+".golden")
				if *update {
					if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if got != string(want) {
					t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
				}
			})
		}
	}
}

func TestLanguageAndZone(t *testing.T) {
	tests := []struct {
		name           string
		noticeLang     string
		receiverLang   string
		zone           func(alert.Subject) *time.Location
		wantLang, want string
	}{
		{"notice language wins", "ru", "bg", nil, "ru", "Оповещение"},
		{"receiver language when notice has none", "", "bg-BG", nil, "bg", "Сигнал"},
		{"unknown falls back to English", "de", "", nil, "en", "Alert #41"},
		{"nil zone is UTC", "en", "", nil, "en", "2026-03-27 16:42 UTC"},
		{"site zone", "en", "", sofia(t), "en", "2026-03-27 18:42 EET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.zone)
			if err != nil {
				t.Fatal(err)
			}
			n := Sample(GroupNegative, tt.noticeLang)
			n.Receiver.Lang = tt.receiverLang
			m, err := r.Render(n)
			if err != nil {
				t.Fatal(err)
			}
			if m.Lang != tt.wantLang || !strings.Contains(m.Text, tt.want) {
				t.Fatalf("lang %q, text:\n%s\nwant lang %q containing %q", m.Lang, m.Text, tt.wantLang, tt.want)
			}
		})
	}
}

func TestEveryKindRenders(t *testing.T) {
	r, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	kinds := []alert.Kind{
		alert.KindOffline, alert.KindStuckKey, alert.KindDeadPanel, alert.KindDeadBacklight, alert.KindSelfTestFailed,
		alert.KindSelfTestMissing, alert.KindSilentUnit, alert.KindClockDrift, alert.KindEdgeClock, alert.KindOutboxBacklog,
		alert.KindOutdatedFirmware, alert.KindWarrantyEnd, alert.KindReplacementDue, alert.KindNegativeVote,
		alert.KindNegativeStreak, alert.KindSatisfactionDrop, alert.KindPositiveStreak,
	}
	for _, lang := range Langs() {
		for _, k := range kinds {
			if _, ok := labels[lang].kinds[k]; !ok {
				t.Errorf("%s: no name for kind %s", lang, k)
			}
			// An empty notice (no alerts, no details) must still render.
			if _, err := r.Render(alert.Notice{Kind: k, Lang: lang}); err != nil {
				t.Errorf("%s %s: %v", lang, k, err)
			}
		}
	}
}

// TestConsoleLinks: with a console URL every notice ends with its alerts'
// console pages in the notice's language; without one, with nothing.
func TestConsoleLinks(t *testing.T) {
	n := alert.Notice{Kind: alert.KindOffline, Severity: alert.SeverityWarning, Lang: "bg",
		Alerts: []alert.Alert{{ID: 7, Kind: alert.KindOffline, Subject: alert.Subject{Org: "o", Site: "s", Device: "kp-1"}}, {ID: 9, Kind: alert.KindOffline}}}
	plain, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := plain.Render(n)
	if err != nil || strings.Contains(m.Text, "/alerts/") || len(m.Links) != 0 {
		t.Fatalf("links without a console URL: %q %v", m.Text, err)
	}
	r, _ := New(nil)
	r.WithConsole("https://semko.example.org/")
	m, err = r.Render(n)
	if err != nil {
		t.Fatal(err)
	}
	want := "Отворете в конзолата:\nhttps://semko.example.org/alerts/7\nhttps://semko.example.org/alerts/9\n"
	if !strings.HasSuffix(m.Text, want) || len(m.Links) != 2 {
		t.Fatalf("text ends %q, links %v; want it to end with %q", m.Text, m.Links, want)
	}
}
