package devconfig_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/semko/semko/fleet/devconfig"
	"github.com/semko/semko/protocol"
)

func ptr[T any](v T) *T { return &v }

func TestResolvePrecedence(t *testing.T) {
	org := &devconfig.Override{
		Panel:       &devconfig.PanelOverride{Lang: ptr("bg"), Texts: map[string]string{"bg": "org bg", "en": "org en"}},
		Backlight:   &devconfig.BacklightOverride{Level: ptr(60), On: ptr("08:00"), Off: ptr("18:00")},
		VoteWindowS: ptr(30),
	}
	site := &devconfig.Override{
		Panel:     &devconfig.PanelOverride{Texts: map[string]string{"bg": "site bg", "de": "site de"}},
		Backlight: &devconfig.BacklightOverride{Off: ptr("20:00")},
		Mode:      ptr(protocol.ModeAlwaysOn),
	}
	dev := &devconfig.Override{
		Panel:       &devconfig.PanelOverride{Lang: ptr("de"), Texts: map[string]string{"en": ""}},
		VoteWindowS: ptr(45),
	}
	cases := []struct {
		name   string
		levels []*devconfig.Override
		check  func(protocol.Config) string
	}{
		{"defaults", nil, func(c protocol.Config) string {
			d := devconfig.Defaults()
			if c.VoteWindowS != d.VoteWindowS || c.Mode != d.Mode || c.Panel.Lang != "en" {
				return "not the defaults"
			}
			return ""
		}},
		{"org only", []*devconfig.Override{org}, func(c protocol.Config) string {
			if c.Panel.Texts[c.Panel.Lang] != "org bg" || c.Backlight.Level != 60 || c.VoteWindowS != 30 || c.Mode != protocol.ModeAfterService {
				return "org values not applied"
			}
			return ""
		}},
		{"site over org", []*devconfig.Override{org, site}, func(c protocol.Config) string {
			if c.Panel.Texts["bg"] != "site bg" || c.Panel.Texts["en"] != "org en" || c.Panel.Texts["de"] != "site de" {
				return "texts not merged per language"
			}
			if c.Backlight.On != "08:00" || c.Backlight.Off != "20:00" || c.Backlight.Level != 60 || c.Mode != protocol.ModeAlwaysOn {
				return "backlight or mode wrong"
			}
			return ""
		}},
		{"device over site over org", []*devconfig.Override{org, site, dev}, func(c protocol.Config) string {
			if c.Panel.Lang != "de" || c.VoteWindowS != 45 || c.Mode != protocol.ModeAlwaysOn {
				return "device values not applied"
			}
			if _, ok := c.Panel.Texts["en"]; ok {
				return "empty text did not remove the language"
			}
			return ""
		}},
		{"nil levels are skipped", []*devconfig.Override{nil, site, nil}, func(c protocol.Config) string {
			if c.Mode != protocol.ModeAlwaysOn {
				return "site not applied"
			}
			return ""
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := devconfig.Resolve(tc.levels...)
			if err != nil {
				t.Fatal(err)
			}
			if msg := tc.check(c); msg != "" {
				t.Errorf("%s: %+v", msg, c)
			}
			if c.Version != devconfig.Version(c) || c.Validate() != nil {
				t.Errorf("version %q or validation wrong", c.Version)
			}
		})
	}
	// Resolving never changes the overrides themselves.
	if org.Panel.Texts["bg"] != "org bg" || len(org.Panel.Texts) != 2 {
		t.Errorf("org override modified: %+v", org.Panel.Texts)
	}
}

func TestResolveRefuses(t *testing.T) {
	cases := []struct {
		name string
		o    devconfig.Override
		msg  string
	}{
		{"window", devconfig.Override{VoteWindowS: ptr(0)}, "vote_window_s 0"},
		{"mode", devconfig.Override{Mode: ptr("often")}, `mode "often"`},
		{"heartbeat", devconfig.Override{HeartbeatS: ptr(100000)}, "heartbeat_s"},
		{"level", devconfig.Override{Backlight: &devconfig.BacklightOverride{Level: ptr(101)}}, "backlight level 101"},
		{"time", devconfig.Override{Backlight: &devconfig.BacklightOverride{On: ptr("7am")}}, `"7am" is not HH:MM`},
		{"lang", devconfig.Override{Panel: &devconfig.PanelOverride{Lang: ptr("fr")}}, `panel lang "fr" has no text`},
		{"text", devconfig.Override{Panel: &devconfig.PanelOverride{Texts: map[string]string{"en": strings.Repeat("x", 161)}}}, "longer than 160"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := devconfig.Check(&tc.o)
			if !errors.Is(err, devconfig.ErrInvalidOverride) || !errors.Is(err, protocol.ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %v, want ErrInvalidOverride saying %q", err, tc.msg)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	a, _ := devconfig.Resolve(&devconfig.Override{VoteWindowS: ptr(30)})
	b, _ := devconfig.Resolve(&devconfig.Override{VoteWindowS: ptr(30)}, &devconfig.Override{})
	c, _ := devconfig.Resolve(&devconfig.Override{VoteWindowS: ptr(31)})
	if a.Version != b.Version {
		t.Errorf("equal content, versions %q and %q", a.Version, b.Version)
	}
	if a.Version == c.Version {
		t.Errorf("different content, same version %q", a.Version)
	}
}

// FuzzOverride feeds arbitrary JSON overrides (as the API receives them)
// through Resolve: it must never panic, and what it accepts must be a valid
// config whose version matches its content and survives the wire.
func FuzzOverride(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"panel":{"lang":"bg","texts":{"bg":"Моля, оценете ни"}},"backlight":{"level":60,"on":"08:00","off":"18:00","days":"1-5","zone":"Europe/Sofia"}}`,
		`{"vote_window_s":30,"mode":"always_on","heartbeat_s":60,"repeat_filter_ms":2000}`,
		`{"panel":{"texts":{"en":""}}}`,
		`{"backlight":{"on":"25:61"}}`,
		`{"panel":{"lang":"x"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var o devconfig.Override
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if dec.Decode(&o) != nil {
			return
		}
		c, err := devconfig.Resolve(&o)
		if err != nil {
			if !errors.Is(err, devconfig.ErrInvalidOverride) {
				t.Fatalf("error not wrapping ErrInvalidOverride: %v", err)
			}
			return
		}
		if c.Version != devconfig.Version(c) {
			t.Fatal("version does not match content")
		}
		b, err := protocol.Encode(c)
		if err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
		back, err := protocol.Decode[protocol.Config](b)
		if err != nil {
			t.Fatalf("accepted config does not decode: %v", err)
		}
		if devconfig.Version(back) != c.Version {
			t.Fatal("version changed over the wire")
		}
	})
}
