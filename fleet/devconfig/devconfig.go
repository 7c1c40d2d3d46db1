// Package devconfig resolves the configuration each keypad should run from
// partial overrides declared per organisation, site and device, gives it a
// version derived from its content, and pushes it to devices as retained
// MQTT messages.
//
// Precedence: built-in Defaults < organisation < site < device. A field an
// override leaves out (nil) is inherited from the level above; panel texts
// merge per language, so a site can add a language without repeating the
// organisation's others.
package devconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"github.com/semko/semko/protocol"
)

// ErrInvalidOverride wraps every refusal of an override: the configuration
// it leads to would not pass protocol.Config.Validate.
var ErrInvalidOverride = errors.New("invalid config override")

// Override is a partial protocol.Config. Nil fields inherit. The same shape
// is used in the fleet file (YAML), the database and the HTTP API (JSON).
type Override struct {
	Panel          *PanelOverride     `yaml:"panel,omitempty" json:"panel,omitempty"`
	Backlight      *BacklightOverride `yaml:"backlight,omitempty" json:"backlight,omitempty"`
	VoteWindowS    *int               `yaml:"vote_window_s,omitempty" json:"vote_window_s,omitempty"`
	Mode           *string            `yaml:"mode,omitempty" json:"mode,omitempty"`
	HeartbeatS     *int               `yaml:"heartbeat_s,omitempty" json:"heartbeat_s,omitempty"`
	RepeatFilterMS *int               `yaml:"repeat_filter_ms,omitempty" json:"repeat_filter_ms,omitempty"`
}

// PanelOverride changes the instruction panel. Texts add to (or replace, per
// language) the inherited texts; an empty text removes that language.
type PanelOverride struct {
	Lang  *string           `yaml:"lang,omitempty" json:"lang,omitempty"`
	Texts map[string]string `yaml:"texts,omitempty" json:"texts,omitempty"`
}

// BacklightOverride changes the backlight level and schedule field by field.
type BacklightOverride struct {
	Level *int    `yaml:"level,omitempty" json:"level,omitempty"`
	On    *string `yaml:"on,omitempty" json:"on,omitempty"`
	Off   *string `yaml:"off,omitempty" json:"off,omitempty"`
	Days  *string `yaml:"days,omitempty" json:"days,omitempty"`
	Zone  *string `yaml:"zone,omitempty" json:"zone,omitempty"`
}

// IsZero reports whether the override changes nothing.
func (o *Override) IsZero() bool {
	return o == nil || (o.Panel == nil && o.Backlight == nil && o.VoteWindowS == nil &&
		o.Mode == nil && o.HeartbeatS == nil && o.RepeatFilterMS == nil)
}

// Defaults is the configuration of a device nothing overrides. It matches
// the edge agent's own defaults, plus an English panel text.
func Defaults() protocol.Config {
	return protocol.Config{
		V:              protocol.Version,
		Panel:          protocol.Panel{Lang: "en", Texts: map[string]string{"en": "Please rate our service"}},
		Backlight:      protocol.Backlight{Level: 80},
		VoteWindowS:    20,
		Mode:           protocol.ModeAfterService,
		HeartbeatS:     60,
		RepeatFilterMS: 3000,
	}
}

// Apply returns base changed by o; base is not modified.
func (o *Override) Apply(base protocol.Config) protocol.Config {
	out := base
	out.Panel.Texts = maps.Clone(base.Panel.Texts)
	if o == nil {
		return out
	}
	if p := o.Panel; p != nil {
		set(&out.Panel.Lang, p.Lang)
		if len(p.Texts) > 0 && out.Panel.Texts == nil {
			out.Panel.Texts = map[string]string{}
		}
		for lang, text := range p.Texts {
			if text == "" {
				delete(out.Panel.Texts, lang)
			} else {
				out.Panel.Texts[lang] = text
			}
		}
	}
	if b := o.Backlight; b != nil {
		set(&out.Backlight.Level, b.Level)
		set(&out.Backlight.On, b.On)
		set(&out.Backlight.Off, b.Off)
		set(&out.Backlight.Days, b.Days)
		set(&out.Backlight.Zone, b.Zone)
	}
	set(&out.VoteWindowS, o.VoteWindowS)
	set(&out.Mode, o.Mode)
	set(&out.HeartbeatS, o.HeartbeatS)
	set(&out.RepeatFilterMS, o.RepeatFilterMS)
	return out
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// Resolve applies the overrides in order (organisation, site, device; nil
// for a level that has none) over Defaults, stamps the result with its
// Version and validates it. The error wraps ErrInvalidOverride and names
// the rule broken.
func Resolve(levels ...*Override) (protocol.Config, error) {
	c := Defaults()
	for _, o := range levels {
		c = o.Apply(c)
	}
	c.Version = Version(c)
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%w: %w", ErrInvalidOverride, err)
	}
	return c, nil
}

// Check validates one override on its own, applied over Defaults. It catches
// a bad value at the level where it is written, even where no device
// inherits it yet.
func Check(o *Override) error {
	_, err := Resolve(o)
	return err
}

// Version derives a short version from the configuration's content (its
// Version field excluded): equal configurations get equal versions, so a
// device confirming a version confirms exactly that content, and an
// unchanged configuration is never pushed again.
func Version(c protocol.Config) string {
	c.Version = ""
	// encoding/json sorts map keys, so the encoding is canonical.
	b, err := json.Marshal(c)
	if err != nil {
		panic("devconfig: marshal config: " + err.Error()) // plain data: cannot fail
	}
	sum := sha256.Sum256(b)
	return "c" + hex.EncodeToString(sum[:6])
}
