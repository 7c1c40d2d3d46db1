package registry

import (
	"errors"
	"strings"
	"testing"

	"github.com/semko/semko/fleet/devconfig"
)

// withConfig is base with config blocks at every level.
const withConfig = `
organisations:
  - id: org-1
    timezone: Europe/Sofia
    config:
      panel: {lang: bg, texts: {bg: "Оценете ни", en: "Rate us"}}
      backlight: {level: 60, on: "08:00", off: "18:00", days: "1-5", zone: Europe/Sofia}
    sites:
      - id: site-1
        config: {vote_window_s: 30, mode: always_on}
        counters:
          - {id: c-1, device: kp-1}
          - {id: c-2, device: kp-2}
devices:
  - id: kp-1
    secret_hash: "sha256$00ff$0000000000000000000000000000000000000000000000000000000000000000"
    config: {heartbeat_s: 30, panel: {lang: en}}
  - {id: kp-2, secret_hash: "sha256$00ff$0000000000000000000000000000000000000000000000000000000000000000"}
  - {id: kp-3, secret_hash: "sha256$00ff$0000000000000000000000000000000000000000000000000000000000000000"}
`

func TestConfigBlocks(t *testing.T) {
	r, err := Parse(strings.NewReader(withConfig))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		device      string
		lang        string
		window      int
		heartbeat   int
		light       int
		wantDefault bool
	}{
		{device: "kp-1", lang: "en", window: 30, heartbeat: 30, light: 60},
		{device: "kp-2", lang: "bg", window: 30, heartbeat: 60, light: 60},
		{device: "kp-3", wantDefault: true}, // at no counter: its own override only
	}
	for _, tt := range tests {
		t.Run(tt.device, func(t *testing.T) {
			c, err := r.Config(tt.device)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantDefault {
				def, _ := devconfig.Resolve()
				if c.Version != def.Version {
					t.Errorf("unplaced device config %+v, want the defaults", c)
				}
				return
			}
			if c.Panel.Lang != tt.lang || c.VoteWindowS != tt.window || c.HeartbeatS != tt.heartbeat || c.Backlight.Level != tt.light {
				t.Errorf("config %+v", c)
			}
		})
	}
	if _, err := r.Config("kp-9"); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("unknown device: %v", err)
	}
	// kp-3 is at no counter and has no override of its own: not managed.
	if cs := r.Configs(); len(cs) != 2 || r.Managed("kp-3") || !r.Managed("kp-2") {
		t.Errorf("Configs has %d devices, want 2 (kp-3 unmanaged)", len(cs))
	}

	// The file round-trips through Marshal with its config blocks.
	f, err := ParseFile([]byte(withConfig))
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Parse(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("marshalled file does not parse: %v\n%s", err, b)
	}
	for _, d := range []string{"kp-1", "kp-2", "kp-3"} {
		a, _ := r.Config(d)
		b, _ := r2.Config(d)
		if a.Version != b.Version {
			t.Errorf("%s: config changed over Marshal: %s vs %s", d, a.Version, b.Version)
		}
	}
}

func TestConfigBlockErrors(t *testing.T) {
	tests := []struct {
		name, old, new, want string
	}{
		{"unknown key", "vote_window_s: 30", "vote_windows: 30", "field vote_windows not found"},
		{"bad window at site", "vote_window_s: 30", "vote_window_s: 0", "organisations[0].sites[0] (site-1): config: invalid config override"},
		{"bad mode", "mode: always_on", "mode: sometimes", `mode "sometimes"`},
		{"bad device lang", "panel: {lang: en}", "panel: {lang: fr}", `devices[0] (kp-1): config: invalid config override: invalid payload: panel lang "fr" has no text`},
		{"bad schedule", `on: "08:00"`, `on: "8 am"`, `backlight time "8 am" is not HH:MM`},
		// Each level alone is fine; the combination is not: the org's lang
		// loses its text at the site.
		{"combination", "config: {vote_window_s: 30, mode: always_on}", "config: {panel: {texts: {bg: \"\"}}}", `devices (kp-2): effective config`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(withConfig, tt.old) {
				t.Fatalf("test bug: %q not in the file", tt.old)
			}
			_, err := Parse(strings.NewReader(strings.Replace(withConfig, tt.old, tt.new, 1)))
			if !errors.Is(err, ErrInvalidFleet) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want ErrInvalidFleet saying %q", err, tt.want)
			}
		})
	}
}
