package calendar

import (
	"errors"
	"testing"
	"time"
)

func sofia(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Sofia")
	if err != nil {
		t.Skipf("no tzdata: %v", err)
	}
	return loc
}

func mustParse(t *testing.T, s Spec) *Calendar {
	t.Helper()
	c, err := Parse(s)
	if err != nil {
		t.Fatalf("parse %+v: %v", s, err)
	}
	return c
}

func TestAdd(t *testing.T) {
	loc := sofia(t)
	at := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, loc) }
	office := Spec{
		Timezone: "Europe/Sofia",
		Hours:    map[string]string{"mon-fri": "09:00-18:00"},
		Holidays: []string{"2026-12-24", "2026-12-25", "2027-01-01"},
	}
	lunch := Spec{Timezone: "Europe/Sofia", Hours: map[string]string{"mon-fri": "09:00-12:00, 13:00-17:00"}}
	allDay := Spec{Timezone: "Europe/Sofia", Hours: map[string]string{"mon-sun": "00:00-24:00"}}
	night := Spec{Timezone: "Europe/Sofia", Hours: map[string]string{"mon-sun": "22:00-24:00,00:00-06:00"}}
	sundayEarly := Spec{Timezone: "Europe/Sofia", Hours: map[string]string{"sun": "02:00-05:00"}}

	tests := []struct {
		name  string
		spec  Spec
		start time.Time
		work  time.Duration
		want  time.Time
	}{
		{"within one day", office, at(2026, 11, 24, 10, 0), 3 * time.Hour, at(2026, 11, 24, 13, 0)},
		{"ends exactly at closing", office, at(2026, 11, 24, 15, 0), 3 * time.Hour, at(2026, 11, 24, 18, 0)},
		{"rest carries to next morning", office, at(2026, 11, 24, 17, 0), 3 * time.Hour, at(2026, 11, 25, 11, 0)},
		{"starts before opening", office, at(2026, 11, 24, 6, 0), 3 * time.Hour, at(2026, 11, 24, 12, 0)},
		{"starts after midnight before opening", office, at(2026, 11, 25, 0, 30), time.Hour, at(2026, 11, 25, 10, 0)},
		{"friday evening to monday late morning", office, at(2026, 11, 27, 19, 0), 3 * time.Hour, at(2026, 11, 30, 12, 0)},
		{"friday afternoon splits over weekend", office, at(2026, 11, 27, 16, 30), 3 * time.Hour, at(2026, 11, 30, 10, 30)},
		{"saturday start waits for monday", office, at(2026, 11, 28, 11, 0), 3 * time.Hour, at(2026, 11, 30, 12, 0)},
		{"holidays and weekend skipped", office, at(2026, 12, 23, 17, 0), 3 * time.Hour, at(2026, 12, 28, 11, 0)},
		{"start on a holiday", office, at(2026, 12, 31, 20, 0), 2 * time.Hour, at(2027, 1, 4, 11, 0)},
		{"lunch break skipped", lunch, at(2026, 11, 23, 11, 0), 3 * time.Hour, at(2026, 11, 23, 15, 0)},
		{"start during lunch", lunch, at(2026, 11, 23, 12, 15), 30 * time.Minute, at(2026, 11, 23, 13, 30)},
		{"zero work is the start", office, at(2026, 11, 28, 11, 0), 0, at(2026, 11, 28, 11, 0)},
		{"across midnight all day", allDay, at(2026, 11, 24, 23, 0), 3 * time.Hour, at(2026, 11, 25, 2, 0)},
		{"night shift across midnight", night, at(2026, 11, 23, 23, 0), 3 * time.Hour, at(2026, 11, 24, 2, 0)},
		{"night shift from daytime", night, at(2026, 11, 23, 12, 0), 9 * time.Hour, at(2026, 11, 24, 23, 0)},
		// 2026-03-29 03:00 EET becomes 04:00 EEST: four real hours from
		// 23:30 end at 04:30 on the wall.
		{"dst spring forward, open all day", allDay, at(2026, 3, 28, 23, 30), 4 * time.Hour, at(2026, 3, 29, 4, 30)},
		// 2026-10-25 04:00 EEST becomes 03:00 EET: six real hours from
		// 23:00 end at 04:00 EET on the wall.
		{"dst fall back, open all day", allDay, at(2026, 10, 24, 23, 0), 6 * time.Hour, time.Date(2026, 10, 25, 2, 0, 0, 0, time.UTC)},
		{"friday before spring dst to monday", office, at(2026, 3, 27, 17, 0), 3 * time.Hour, at(2026, 3, 30, 11, 0)},
		{"friday before autumn dst to monday", office, at(2026, 10, 23, 17, 0), 3 * time.Hour, at(2026, 10, 26, 11, 0)},
		// Sunday 02:00 EET to 05:00 EEST is two real hours.
		{"opening hours spanning the skipped hour", sundayEarly, at(2026, 3, 29, 2, 0), 2 * time.Hour, at(2026, 3, 29, 5, 0)},
		{"rest of a short dst day moves a week", sundayEarly, at(2026, 3, 29, 2, 0), 2*time.Hour + 30*time.Minute, at(2026, 4, 5, 2, 30)},
		{"opening hours spanning the repeated hour", sundayEarly, at(2026, 10, 25, 2, 0), 4 * time.Hour, at(2026, 10, 25, 5, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, tt.spec)
			got, err := c.Add(tt.start, tt.work)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("Add(%s, %s) = %s, want %s", tt.start, tt.work, got.In(loc), tt.want.In(loc))
			}
			if tt.work > 0 {
				if between := c.Between(tt.start, got); between != tt.work {
					t.Errorf("Between(start, due) = %s, want %s", between, tt.work)
				}
			}
		})
	}
}

func TestAddNeverOpen(t *testing.T) {
	c := mustParse(t, Spec{Timezone: "UTC"})
	if _, err := c.Add(time.Now(), time.Hour); !errors.Is(err, ErrNeverOpen) {
		t.Fatalf("err = %v, want ErrNeverOpen", err)
	}
}

func TestAlways(t *testing.T) {
	start := time.Date(2026, 11, 27, 19, 0, 0, 0, time.UTC)
	got, err := Always().Add(start, 3*time.Hour)
	if err != nil || !got.Equal(start.Add(3*time.Hour)) {
		t.Fatalf("Always().Add = %s, %v", got, err)
	}
}

func TestOpen(t *testing.T) {
	loc := sofia(t)
	c := mustParse(t, Spec{Timezone: "Europe/Sofia", Hours: map[string]string{"mon-fri": "09:00-18:00"}, Holidays: []string{"2026-12-24"}})
	tests := []struct {
		t    time.Time
		want bool
	}{
		{time.Date(2026, 11, 24, 9, 0, 0, 0, loc), true},
		{time.Date(2026, 11, 24, 18, 0, 0, 0, loc), false},
		{time.Date(2026, 11, 24, 8, 59, 0, 0, loc), false},
		{time.Date(2026, 11, 28, 12, 0, 0, 0, loc), false},
		{time.Date(2026, 12, 24, 12, 0, 0, 0, loc), false},
		{time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC), true}, // 10:00 in Sofia
	}
	for _, tt := range tests {
		if got := c.Open(tt.t); got != tt.want {
			t.Errorf("Open(%s) = %v, want %v", tt.t, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := map[string]Spec{
		"bad zone":        {Timezone: "Mars/Olympus"},
		"bad day":         {Hours: map[string]string{"funday": "09:00-17:00"}},
		"backwards range": {Hours: map[string]string{"fri-mon": "09:00-17:00"}},
		"bad clock":       {Hours: map[string]string{"mon": "9-17"}},
		"clock past 24":   {Hours: map[string]string{"mon": "09:00-24:30"}},
		"reversed span":   {Hours: map[string]string{"mon": "17:00-09:00"}},
		"overlap":         {Hours: map[string]string{"mon": "09:00-13:00,12:00-17:00"}},
		"day twice":       {Hours: map[string]string{"mon-fri": "09:00-17:00", "mon": "10:00-11:00"}},
		"bad holiday":     {Holidays: []string{"24.12.2026"}},
	}
	for name, s := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(s); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func FuzzAdd(f *testing.F) {
	f.Add("mon-fri", "09:00-18:00", int64(1764277200), int64(3*3600))
	f.Add("mon-sun", "22:00-24:00,00:00-06:00", int64(1774737000), int64(4*3600))
	f.Fuzz(func(t *testing.T, days, hours string, start, work int64) {
		c, err := Parse(Spec{Timezone: "Europe/Sofia", Hours: map[string]string{days: hours}})
		if err != nil {
			return
		}
		st := time.Unix(start%(1<<40), 0)
		w := time.Duration(work%(200*3600)) * time.Second
		if w < 0 {
			w = -w
		}
		due, err := c.Add(st, w)
		if err != nil {
			return
		}
		if due.Before(st) {
			t.Fatalf("due %s before start %s", due, st)
		}
		if w > 0 && c.Between(st, due) != w {
			t.Fatalf("Between(start, due) = %s, want %s", c.Between(st, due), w)
		}
	})
}
