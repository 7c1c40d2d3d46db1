package elector_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/semko/semko/backend/elector"
	"github.com/semko/semko/internal/natslocal"
	"github.com/semko/semko/internal/testwait"
)

// runLog records which replica ran which slot.
type runLog struct {
	mu   sync.Mutex
	runs map[int64][]string // slot (Unix ms) → replicas that ran it
}

func (l *runLog) add(slot time.Time, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.runs[slot.UnixMilli()] = append(l.runs[slot.UnixMilli()], id)
}

func (l *runLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.runs)
}

// TestSlotsOncePerPeriod: three replicas' schedulers fire a job every
// period with Slots as its locker; the leader of the lease is SIGKILLed
// in effect (its connection closed, no resignation) half-way. Every slot
// from the first to the last ran exactly once: not twice while several
// replicas live, not zero across the death.
func TestSlotsOncePerPeriod(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node NATS cluster")
	}
	// Two seconds: a run recorded up to 1.75 s after its firing (the
	// scheduler's lag on a loaded machine, the non-leaders' defer, the
	// claim) still counts in its own slot (elector.SlotAt).
	const period = 2 * time.Second
	c := natslocal.StartForTest(t, natslocal.Options{})
	log := &runLog{runs: map[int64][]string{}}

	type replica struct {
		nc    *nats.Conn
		e     *elector.Elector
		sched gocron.Scheduler
	}
	start := func(id string) *replica {
		nc, err := nats.Connect(c.ClientURLs(), nats.MaxReconnects(-1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		e, err := elector.New(elector.Options{JS: js, ID: id, Lease: lease})
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = e.Run(ctx) }()
		t.Cleanup(func() { stop(); <-done })
		slots, err := elector.NewSlots(elector.SlotOptions{JS: js, ID: id, Leader: e.Leader, Defer: period / 4})
		if err != nil {
			t.Fatal(err)
		}
		s, err := gocron.NewScheduler()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.NewJob(gocron.DurationJob(period),
			gocron.NewTask(func() { log.add(elector.SlotAt(time.Now(), period), id) }),
			append([]gocron.JobOption{gocron.WithName("test-job")},
				elector.JobOptions(slots.Every, time.Now(), period)...)...); err != nil {
			t.Fatal(err)
		}
		s.Start()
		t.Cleanup(func() { _ = s.Shutdown() })
		return &replica{nc: nc, e: e, sched: s}
	}
	rs := []*replica{start("r1"), start("r2"), start("r3")}

	testwait.Within(t, 30*time.Second, "six slots run", func() bool { return log.count() >= 6 })
	var leader *replica
	testwait.Within(t, 30*time.Second, "a leader", func() bool {
		for _, r := range rs {
			if r.e.Leader() {
				leader = r
			}
		}
		return leader != nil
	})
	leader.nc.Close() // death: no resignation, its claims fail from now on
	died := log.count()
	testwait.Within(t, 60*time.Second, "eight more slots after the death", func() bool { return log.count() >= died+8 })
	for _, r := range rs {
		_ = r.sched.Shutdown()
	}

	log.mu.Lock()
	defer log.mu.Unlock()
	var first, last int64
	for s := range log.runs {
		if first == 0 || s < first {
			first = s
		}
		last = max(last, s)
	}
	step := period.Milliseconds()
	for s := first; s <= last; s += step {
		if got := log.runs[s]; len(got) != 1 {
			t.Errorf("slot %s ran %d times (%v), want once", time.UnixMilli(s).UTC().Format("15:04:05.000"), len(got), got)
		}
	}
	t.Logf("%d slots of %v, each run once; the leader died after slot %d", (last-first)/step+1, period, died)
}
