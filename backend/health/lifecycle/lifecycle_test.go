package lifecycle

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/fleet/registry"
)

type event struct {
	day     string // YYYY-MM-DD of the run
	kind    alert.Kind
	site    string
	resolve bool
	devices string
}

func (e event) String() string {
	verb := "raise"
	if e.resolve {
		verb = "resolve"
	}
	return fmt.Sprintf("%s %s %s %s [%s]", e.day, verb, e.kind, e.site, e.devices)
}

// recorder keeps raises and the resolutions of open alerts; like the
// alert manager, it ignores a Resolve with nothing open.
type recorder struct {
	clock clockwork.Clock
	mu    sync.Mutex
	evs   []event
	open  map[string]bool
}

func (r *recorder) Raise(_ context.Context, f alert.Finding) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f.Message == "" || f.Hint == "" || f.Subject.Site == "" || f.Subject.Device != "" {
		return fmt.Errorf("finding not a site reminder with message and hint: %+v", f)
	}
	r.evs = append(r.evs, event{day: f.Time.Format(time.DateOnly), kind: f.Kind, site: f.Subject.Site, devices: f.Details["devices"]})
	if r.open == nil {
		r.open = map[string]bool{}
	}
	r.open[f.Key()] = true
	return nil
}

func (r *recorder) Resolve(_ context.Context, kind alert.Kind, s alert.Subject, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := alert.Finding{Kind: kind, Subject: s}.Key()
	if !r.open[key] {
		return nil
	}
	delete(r.open, key)
	r.evs = append(r.evs, event{day: r.clock.Now().Format(time.DateOnly), kind: kind, site: s.Site, resolve: true})
	return nil
}

const hash = "sha256$00$0000000000000000000000000000000000000000000000000000000000000000"

func date(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

// fleetAt builds a registry: counters c-1, c-2 at site-a, c-3 at site-b,
// c-4 at site-c, holding the devices named in at (counter -> device).
func fleetAt(t *testing.T, devices []registry.FileDevice, at map[string]string) *registry.Registry {
	t.Helper()
	reg, err := registry.Build(registry.File{
		Organisations: []registry.FileOrg{{ID: "org", Timezone: "UTC", Sites: []registry.FileSite{
			{ID: "site-a", Name: "Sofia centre", Counters: []registry.FileCounter{{ID: "c-1", Device: at["c-1"]}, {ID: "c-2", Device: at["c-2"]}}},
			{ID: "site-b", Counters: []registry.FileCounter{{ID: "c-3", Device: at["c-3"]}}},
			{ID: "site-c", Counters: []registry.FileCounter{{ID: "c-4", Device: at["c-4"]}}},
		}}},
		Devices: devices,
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestRemindersOverThreeYears runs the daily job on a fake clock for three
// years and ten days and checks every reminder and resolution by date:
// warranty ends one year after installation (two for the SK7 model),
// replacement is due after three years, reminders come 90, 30 and 7 days
// ahead and are grouped per site, and a keypad past its replacement date
// stays flagged until a new keypad stands at its counter.
func TestRemindersOverThreeYears(t *testing.T) {
	installed := date("2026-01-01")
	dev := func(id, model string, inst time.Time) registry.FileDevice {
		return registry.FileDevice{ID: id, SecretHash: hash, Model: model, Installed: registry.Date{Time: inst}}
	}
	devices := []registry.FileDevice{
		dev("kp-1", "SK5", installed), dev("kp-2", "SK5", installed), // site-a, due together
		dev("kp-3", "SK7", installed),          // site-b, a model that lasts longer
		dev("kp-4", "SK5", date("2026-03-01")), // site-c
		dev("kp-9", "SK5", installed),          // in stock: never reminded
	}
	var current atomic.Pointer[registry.Registry]
	current.Store(fleetAt(t, devices, map[string]string{"c-1": "kp-1", "c-2": "kp-2", "c-3": "kp-3", "c-4": "kp-4"}))

	start := time.Date(2026, 1, 1, 5, 59, 0, 0, time.UTC)
	clock := clockwork.NewFakeClockAt(start)
	rec := &recorder{clock: clock}
	job, err := New(Options{
		Config:   Config{Models: map[string]Life{"SK7": {Warranty: 2 * 8760 * time.Hour, ServiceLife: 4 * 8760 * time.Hour}}},
		Registry: current.Load, Raiser: rec, Clock: clock, Location: time.UTC,
	})
	if err != nil {
		t.Fatal(err)
	}
	replaceA := installed.Add(DefaultServiceLife) // kp-1 and kp-2
	end := replaceA.AddDate(0, 0, 10)
	// Replacements: kp-1 three days after its date, kp-2 five days after.
	swaps := map[string]func(){
		replaceA.AddDate(0, 0, 3).Format(time.DateOnly): func() {
			devices = append(devices, dev("kp-5", "SK5", replaceA.AddDate(0, 0, 3)))
			current.Store(fleetAt(t, devices, map[string]string{"c-1": "kp-5", "c-2": "kp-2", "c-3": "kp-3", "c-4": "kp-4"}))
		},
		replaceA.AddDate(0, 0, 5).Format(time.DateOnly): func() {
			devices = append(devices, dev("kp-6", "SK5", replaceA.AddDate(0, 0, 5)))
			current.Store(fleetAt(t, devices, map[string]string{"c-1": "kp-5", "c-2": "kp-6", "c-3": "kp-3", "c-4": "kp-4"}))
		},
	}
	// The daily run, day after day on the fake clock. (The schedule itself
	// is tested in TestScheduleRunsDaily.)
	clock.Advance(time.Minute)
	for ; clock.Now().Before(end); clock.Advance(24 * time.Hour) {
		if err := job.CheckNow(t.Context()); err != nil {
			t.Fatalf("run at %v: %v", clock.Now(), err)
		}
		if swap := swaps[clock.Now().Format(time.DateOnly)]; swap != nil {
			swap() // after the day's run, before the next
		}
	}

	// The first 06:00 run at or after t.
	run := func(t time.Time) string {
		r := time.Date(t.Year(), t.Month(), t.Day(), 6, 0, 0, 0, time.UTC)
		if r.Before(t) {
			r = r.AddDate(0, 0, 1)
		}
		return r.Format(time.DateOnly)
	}
	days := func(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }
	wA, wB, wC := installed.Add(DefaultWarranty), installed.Add(2*8760*time.Hour), date("2026-03-01").Add(DefaultWarranty)
	rC := date("2026-03-01").Add(DefaultServiceLife)
	var want []event
	for _, lead := range []int{90, 30, 7} {
		want = append(want,
			event{day: run(wA.Add(-days(lead))), kind: alert.KindWarrantyEnd, site: "site-a", devices: "kp-1,kp-2"},
			event{day: run(wB.Add(-days(lead))), kind: alert.KindWarrantyEnd, site: "site-b", devices: "kp-3"},
			event{day: run(wC.Add(-days(lead))), kind: alert.KindWarrantyEnd, site: "site-c", devices: "kp-4"},
			event{day: run(replaceA.Add(-days(lead))), kind: alert.KindReplacementDue, site: "site-a", devices: "kp-1,kp-2"},
		)
	}
	want = append(want,
		event{day: run(wA), kind: alert.KindWarrantyEnd, site: "site-a", resolve: true},
		event{day: run(wB), kind: alert.KindWarrantyEnd, site: "site-b", resolve: true},
		event{day: run(wC), kind: alert.KindWarrantyEnd, site: "site-c", resolve: true},
		event{day: run(rC.Add(-days(90))), kind: alert.KindReplacementDue, site: "site-c", devices: "kp-4"},
		// Past the date: flagged (a new reminder, now overdue) and kept
		// while either keypad is still there.
		event{day: run(replaceA), kind: alert.KindReplacementDue, site: "site-a", devices: "kp-1,kp-2"},
		event{day: replaceA.AddDate(0, 0, 6).Format(time.DateOnly), kind: alert.KindReplacementDue, site: "site-a", resolve: true},
	)
	sortEvents(want)
	rec.mu.Lock()
	got := append([]event(nil), rec.evs...)
	rec.mu.Unlock()
	sortEvents(got)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events\n got:\n%s\nwant:\n%s", lines(got), lines(want))
	}
}

func sortEvents(evs []event) {
	for i := 1; i < len(evs); i++ {
		for j := i; j > 0 && evs[j].String() < evs[j-1].String(); j-- {
			evs[j], evs[j-1] = evs[j-1], evs[j]
		}
	}
}

func lines(evs []event) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString("  " + e.String() + "\n")
	}
	return b.String()
}

func TestStage(t *testing.T) {
	j, err := New(Options{Registry: func() *registry.Registry { return nil }, Raiser: &recorder{}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		left  time.Duration
		stage int
		ok    bool
	}{
		{91 * 24 * time.Hour, 0, false},
		{90 * 24 * time.Hour, 90, true},
		{31 * 24 * time.Hour, 90, true},
		{30 * 24 * time.Hour, 30, true},
		{7 * 24 * time.Hour, 7, true},
		{time.Hour, 7, true},
	}
	for _, tc := range tests {
		if s, ok := j.stage(tc.left); s != tc.stage || ok != tc.ok {
			t.Errorf("stage(%v) = %d %v, want %d %v", tc.left, s, ok, tc.stage, tc.ok)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"models", Config{Models: map[string]Life{"SK5": {Warranty: 8760 * time.Hour, ServiceLife: 26280 * time.Hour}}}, true},
		{"negative", Config{Models: map[string]Life{"SK5": {Warranty: -time.Hour}}}, false},
		{"bad lead", Config{LeadDays: []int{30, 0}}, false},
		{"bad schedule", Config{Schedule: "daily"}, false},
	}
	for _, tc := range tests {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// TestScheduleRunsDaily checks the job is scheduled under its name at
// 06:00, runs when the fake clock gets there, and plans the next day.
func TestScheduleRunsDaily(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 1, 1, 5, 0, 0, 0, time.UTC))
	job, err := New(Options{Registry: func() *registry.Registry { return fleetAt(t, nil, nil) },
		Raiser: &recorder{clock: clock}, Clock: clock, Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	if err := job.start(); err != nil {
		t.Fatal(err)
	}
	defer job.stop()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	poll := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if ctx.Err() != nil {
				t.Fatalf("%s: not by the deadline", what)
			}
			<-time.After(time.Millisecond) // poll, bounded by ctx
		}
	}
	first := time.Date(2026, 1, 1, 6, 0, 0, 0, time.UTC)
	poll("first run planned at 06:00", func() bool { return job.NextRun().Equal(first) })
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	poll("run at 06:00", func() bool { return job.Runs() == 1 })
	poll("next run planned the next day at 06:00", func() bool { return job.NextRun().Equal(first.AddDate(0, 0, 1)) })
}

func TestRunAtStart(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 1, 1, 5, 0, 0, 0, time.UTC))
	job, err := New(Options{Config: Config{RunAtStart: true}, Registry: func() *registry.Registry { return fleetAt(t, nil, nil) },
		Raiser: &recorder{clock: clock}, Clock: clock, Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	if err := job.start(); err != nil {
		t.Fatal(err)
	}
	defer job.stop()
	deadline := time.Now().Add(10 * time.Second)
	for job.Runs() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("no run at start")
		}
		<-time.After(time.Millisecond) // poll, bounded by the deadline
	}
	if next := job.NextRun(); !next.Equal(time.Date(2026, 1, 1, 6, 0, 0, 0, time.UTC)) {
		t.Fatalf("scheduled run at %v, want 06:00", next)
	}
}
