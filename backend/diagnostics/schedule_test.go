package diagnostics

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/backend/ingest"
)

func TestScheduleNamesEveryCheck(t *testing.T) {
	clock := clockwork.NewFakeClockAt(t0)
	fl := newFakeFleet(t, t0)
	d, err := New(Options{Devices: fl.devices, Registry: fl.registry, Raiser: newRecorder(), Publisher: &pubRecorder{}, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	if err := d.Start(); !errors.Is(err, ErrStarted) {
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
// the offline check: a unit stops sending heartbeats, the fake clock moves
// on, and the finding appears; its heartbeat returns and the finding
// resolves.
func TestScheduledOfflineOnFakeClock(t *testing.T) {
	clock := clockwork.NewFakeClockAt(t0)
	fl := newFakeFleet(t, t0)
	rec := newRecorder()
	sched := map[string]string{}
	for _, c := range Checks {
		sched[c] = scheduleOff
	}
	sched[CheckOffline] = "1m"
	d, err := New(Options{Config: Config{Schedule: sched}, Devices: fl.devices, Registry: fl.registry,
		Raiser: rec, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	// Every minute the other units beat; kp-2 fell silent at t0.
	step := func() {
		t.Helper()
		if err := clock.BlockUntilContext(ctx, 1); err != nil {
			t.Fatalf("scheduler never waited on the clock: %v", err)
		}
		clock.Advance(time.Minute)
		for _, id := range []string{"kp-1", "kp-3"} {
			fl.edit(id, func(s *ingest.DeviceState) { s.HeartbeatReceived = clock.Now() })
		}
	}
	waitFor := func(want []string) {
		t.Helper()
		for !reflect.DeepEqual(rec.firing(), want) {
			if ctx.Err() != nil {
				t.Fatalf("firing %q, want %q", rec.firing(), want)
			}
			step()
		}
	}
	waitFor([]string{"kp-2 offline"})
	if since := clock.Now().Sub(t0); since < 3*time.Minute || since > 5*time.Minute {
		t.Errorf("offline raised %v after the last heartbeat, want just past 3 min", since)
	}
	fl.edit("kp-2", func(s *ingest.DeviceState) { s.HeartbeatReceived = clock.Now() })
	waitFor(nil)
}
