package backend

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/backend/alert"
)

// alertsExample is the `alerts:` section shown in backend/alert/README.md.
const alertsExample = `
alerts:
  lang: bg
  receivers:
    - {name: field-techs, email: [techs@example.org], mqtt: true}
    - {name: support-lead, email: [lead@example.org], webhook: "https://chat.example.org/hook", lang: en}
  route:
    receivers: [field-techs]
    escalate: [[support-lead]]
    deadline: 3h
    group_wait: 30s
    repeat_interval: 4h
    routes:
      - match: {kind: "negative_vote,positive_streak"}
        receivers: [responsible]
        group_wait: 1m
        group_interval: 5m
      - match: {kind: "negative_streak,satisfaction_drop"}
        receivers: [support-lead]
  calendars:
    default:
      hours: {mon-fri: "09:00-18:00"}
      holidays: ["2026-12-24", "2026-12-25", "2026-12-26"]
  maintenance:
    - name: sunday-night
      match: {kind: "offline"}
      calendar: {timezone: Europe/Sofia, hours: {sun: "01:00-05:00"}}
  expire: {negative_vote: 45m}
  ratings:
    negative_max: 1
    streak_run: 3
    satisfied_min: 0.6
    window: 1h
    min_votes: 20
    positive_run: 0
`

func TestAlertsConfigExample(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "semko.yaml")
	fleet, err := os.ReadFile("../deploy/fleet.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fleet.yaml"), fleet, 0o600); err != nil {
		t.Fatal(err)
	}
	head := "data_dir: " + filepath.Join(dir, "data") + "\nfleet_file: " + filepath.Join(dir, "fleet.yaml") +
		"\nhttp: {addr: '127.0.0.1:0', token: t}\nmqtt: {addr: '127.0.0.1:0'}\n"
	if err := os.WriteFile(cfgPath, []byte(head+alertsExample), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Alerts.Route.Deadline != 3*time.Hour || len(cfg.Alerts.Receivers) != 2 || cfg.Alerts.Ratings.SatisfiedMin != 0.6 {
		t.Fatalf("parsed %+v", cfg.Alerts)
	}
	app, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if app.Alerts() == nil {
		t.Fatal("no alert manager")
	}

	bad := map[string]string{
		"unknown receiver": "alerts:\n  route: {receivers: [nobody]}\n",
		"reserved name":    "alerts:\n  receivers: [{name: responsible}]\n",
		"bad calendar":     "alerts:\n  calendars: {default: {hours: {mon: '9-5'}}}\n",
		"unknown site":     "alerts:\n  calendars: {sites: {atlantis: {hours: {mon: '09:00-17:00'}}}}\n",
		"bad maintenance":  "alerts:\n  maintenance: [{name: x, match: {colour: red}, calendar: {hours: {sun: '01:00-02:00'}}}]\n",
		"negative_max 3":   "alerts:\n  ratings: {negative_max: 3}\n",
	}
	for name, section := range bad {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "semko.yaml")
			head := strings.Replace(head, filepath.Join(dir, "data"), filepath.Join(t.TempDir(), "data"), 1)
			os.WriteFile(p, []byte(head+section), 0o600)
			cfg, err := LoadConfig(p)
			if err != nil {
				return // rejected while loading is fine too
			}
			if app, err := New(cfg, slog.New(slog.DiscardHandler)); err == nil {
				app.Close()
				t.Fatal("New accepted a bad alerts section")
			}
		})
	}
	_ = alert.ReceiverResponsible
}
