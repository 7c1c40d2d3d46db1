package diagnostics

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/backend/fleet/live"
)

func TestScheduleNamesEveryCheck(t *testing.T) {
	clock := clockwork.NewFakeClockAt(t0)
	fl := newFakeFleet(t, t0)
	d, err := New(Options{Devices: fl.devices, Registry: fl.registry, Raiser: newRecorder(), Publisher: &pubRecorder{}, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	defer d.stop()
	if err := d.start(); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start: %v", err)
	}
	jobs := d.Jobs()
	var names []string
	for n := range jobs {
		names = append(names, n)
	}
	sort.Strings(names)
	want := append([]string(nil), Checks...)
	sort.Strings(want)
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("jobs %q, want %q", names, want)
	}
	if next := jobs[CheckSelfTest]; next.Hour() != 3 || next.Minute() != 0 {
		t.Errorf("self-test next at %v, want 03:00", next)
	}
	if next := jobs[CheckOffline]; next.Sub(t0) != 30*time.Second {
		t.Errorf("offline next at %v, want 30 s after start", next)
	}
}

// TestScheduledOfflineOnFakeClock lets the scheduler, not the test, run
// the offline check: a unit fell silent, the fake clock moves to the
// check's first run, and the finding appears. (Later runs are gocron's
// business; advancing a fake clock again while the singleton run is
// finishing makes gocron drop ticks, so the checks' own behaviour over
// time is tested through Run in TestChecks.)
func TestScheduledOfflineOnFakeClock(t *testing.T) {
	clock := clockwork.NewFakeClockAt(t0)
	fl := newFakeFleet(t, t0)
	rec := newRecorder()
	sched := map[string]string{}
	for _, c := range Checks {
		sched[c] = scheduleOff
	}
	sched[CheckOffline] = "4m"
	d, err := New(Options{Config: Config{Schedule: sched}, Devices: fl.devices, Registry: fl.registry,
		Raiser: rec, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	defer d.stop()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	next := waitPlanned(ctx, t, clock, func() time.Time { return d.Jobs()[CheckOffline] })
	if next.Sub(t0) != 4*time.Minute {
		t.Fatalf("first run planned at %v, want 4 min after start", next)
	}
	// kp-2 fell silent at t0; the others beat just before the run.
	for _, id := range []string{"kp-1", "kp-3"} {
		fl.edit(id, func(s *live.DeviceState) { s.HeartbeatReceived = next.Add(-time.Second) })
	}
	clock.Advance(next.Sub(clock.Now()))
	for !reflect.DeepEqual(rec.firing(), []string{"kp-2 offline"}) {
		if ctx.Err() != nil {
			t.Fatalf("firing %q after the scheduled run", rec.firing())
		}
		<-time.After(time.Millisecond) // poll, bounded by ctx
	}
}

// waitPlanned waits until next() is after the clock's now and the
// scheduler waits on the clock, and returns next().
func waitPlanned(ctx context.Context, t *testing.T, clock *clockwork.FakeClock, next func() time.Time) time.Time {
	t.Helper()
	for !next().After(clock.Now()) {
		if ctx.Err() != nil {
			t.Fatalf("no run planned after %v", clock.Now())
		}
		<-time.After(time.Millisecond) // poll, bounded by ctx
	}
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatalf("scheduler never waited on the clock: %v", err)
	}
	return next()
}
