package edge

import (
	"fmt"
	"testing"
	"time"

	"github.com/semko/semko/protocol"
)

func TestVoteRules(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	type step struct {
		at       time.Duration // since t0
		activate string        // open a window with this id instead of pressing
		key      int
		want     string // valid:reason:activation of the press
	}
	tests := []struct {
		name  string
		mode  string
		steps []step
	}{
		{name: "press without activation", mode: protocol.ModeAfterService, steps: []step{
			{at: 0, key: 3, want: "false:no_activation:"},
		}},
		{name: "vote then repeat then free again", mode: protocol.ModeAfterService, steps: []step{
			{at: 0, activate: "a1"},
			{at: 2 * time.Second, key: 5, want: "true::a1"},
			{at: 3 * time.Second, key: 5, want: "false:repeat:a1"},
			{at: 21 * time.Second, key: 5, want: "false:repeat:a1"},
			{at: 23 * time.Second, key: 5, want: "false:no_activation:"},
		}},
		{name: "window expired", mode: protocol.ModeAfterService, steps: []step{
			{at: 0, activate: "a1"},
			{at: 20 * time.Second, key: 2, want: "false:no_activation:"},
		}},
		{name: "new activation replaces the open one", mode: protocol.ModeAfterService, steps: []step{
			{at: 0, activate: "a1"},
			{at: time.Second, activate: "a2"},
			{at: 2 * time.Second, key: 1, want: "true::a2"},
		}},
		{name: "always on filters repeats", mode: protocol.ModeAlwaysOn, steps: []step{
			{at: 0, key: 4, want: "true::"},
			{at: time.Second, key: 4, want: "false:filtered:"},
			{at: 3500 * time.Millisecond, key: 4, want: "true::"},
		}},
		{name: "always on takes an activation", mode: protocol.ModeAlwaysOn, steps: []step{
			{at: 0, activate: "a1"},
			{at: time.Second, key: 4, want: "true::a1"},
			{at: 5 * time.Second, key: 4, want: "true::"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r voteRules
			c := DefaultConfig()
			c.Mode = tt.mode
			r.configure(c)
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				if s.activate != "" {
					r.open = r.newWindow(protocol.Activate{ID: s.activate}, now)
					continue
				}
				p := r.judge(now, s.key)
				r.commit(p)
				v := p.vote
				if got := fmt.Sprintf("%v:%s:%s", v.Valid, v.Reason, v.Activation); got != s.want {
					t.Fatalf("step %d: %s, want %s", i, got, s.want)
				}
				v.Device, v.Seq = "kp-1", 1
				if err := v.Validate(); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
		})
	}
}

func TestStampIncreases(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 123_456_789, time.UTC)
	a := stamp(t0, time.Time{})
	b := stamp(t0, a)
	c := stamp(t0.Add(-time.Second), b)
	if !a.Equal(t0.Truncate(time.Millisecond)) || !b.After(a) || !c.After(b) {
		t.Fatalf("stamps %v %v %v", a, b, c)
	}
}

func TestBacklightLevel(t *testing.T) {
	mon9 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC) // a Monday
	tests := []struct {
		name string
		b    protocol.Backlight
		at   time.Time
		want int
	}{
		{name: "no schedule", b: protocol.Backlight{Level: 70}, at: mon9, want: 70},
		{name: "inside hours", b: protocol.Backlight{Level: 70, On: "08:00", Off: "18:00"}, at: mon9, want: 70},
		{name: "before hours", b: protocol.Backlight{Level: 70, On: "10:00", Off: "18:00"}, at: mon9, want: 0},
		{name: "over midnight", b: protocol.Backlight{Level: 70, On: "22:00", Off: "06:00"}, at: mon9.Add(-5 * time.Hour), want: 70},
		{name: "weekend off", b: protocol.Backlight{Level: 70, Days: "1-5"}, at: mon9.AddDate(0, 0, -1), want: 0},
		{name: "day list", b: protocol.Backlight{Level: 70, Days: "2,7"}, at: mon9.AddDate(0, 0, -1), want: 70},
		{name: "zone shifts the hour", b: protocol.Backlight{Level: 70, On: "08:00", Off: "10:00", Zone: "Europe/Sofia"}, at: mon9, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := backlightLevel(tt.b, tt.at); got != tt.want {
				t.Fatalf("level %d, want %d", got, tt.want)
			}
		})
	}
}
