package elector_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/semko/semko/backend/elector"
	"github.com/semko/semko/internal/natslocal"
	"github.com/semko/semko/internal/testwait"
)

const lease = 2 * time.Second

type candidate struct {
	e    *elector.Elector
	nc   *nats.Conn
	stop context.CancelFunc
	done chan error
	runs atomic.Int64 // scheduled job runs on this replica
}

func startCandidate(t *testing.T, c *natslocal.Cluster, id string) *candidate {
	t.Helper()
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
	cd := &candidate{e: e, nc: nc, stop: stop, done: make(chan error, 1)}
	go func() { cd.done <- e.Run(ctx) }()
	t.Cleanup(func() { cd.halt(t) })

	// A scheduler on this replica whose job runs only while it leads.
	s, err := gocron.NewScheduler(gocron.WithDistributedElector(e))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.NewJob(gocron.DurationJob(100*time.Millisecond), gocron.NewTask(func() { cd.runs.Add(1) })); err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { _ = s.Shutdown() })
	return cd
}

// halt stops Run cleanly (it resigns if it leads); idempotent.
func (cd *candidate) halt(t *testing.T) {
	cd.stop()
	select {
	case err := <-cd.done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Error("elector did not stop")
	}
	cd.done <- nil // for a second halt
}

func leaders(cs []*candidate) []*candidate {
	var out []*candidate
	for _, c := range cs {
		if c.e.Leader() {
			out = append(out, c)
		}
	}
	return out
}

// TestOneLeaderAndHandover: three replicas elect one leader, only its
// scheduler runs the job, never two lead at once; a SIGKILL-like death of
// the leader (connection gone, no resignation) hands over within
// Lease+Lease/3, a clean stop at the next campaign.
func TestOneLeaderAndHandover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node NATS cluster")
	}
	c := natslocal.StartForTest(t, natslocal.Options{})
	cs := []*candidate{startCandidate(t, c, "r1"), startCandidate(t, c, "r2"), startCandidate(t, c, "r3")}

	// Watch for two leaders at once during the whole test.
	var overlap atomic.Int64
	watchCtx, stopWatch := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for watchCtx.Err() == nil {
			if len(leaders(cs)) > 1 {
				overlap.Add(1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	defer func() {
		stopWatch()
		wg.Wait()
		if n := overlap.Load(); n > 0 {
			t.Errorf("two replicas led at once in %d samples", n)
		}
	}()

	var first *candidate
	testwait.Within(t, 30*time.Second, "one leader", func() bool {
		l := leaders(cs)
		if len(l) == 1 {
			first = l[0]
		}
		return len(l) == 1
	})
	testwait.Within(t, 10*time.Second, "the leader's job running", func() bool { return first.runs.Load() >= 5 })
	for _, cd := range cs {
		if cd != first && cd.runs.Load() != 0 {
			t.Errorf("replica %s ran the job %d times without leading", cd.e.ID(), cd.runs.Load())
		}
	}

	// Death: the connection goes first, so the resignation cannot reach
	// the cluster; the lease must expire by itself.
	first.nc.Close()
	died := time.Now()
	first.halt(t)
	var second *candidate
	testwait.Within(t, 30*time.Second, "a new leader after the leader's death", func() bool {
		l := leaders(cs)
		if len(l) == 1 && l[0] != first {
			second = l[0]
			return true
		}
		return false
	})
	took := time.Since(died)
	if limit := lease + lease/3 + time.Second; took > limit {
		t.Errorf("handover after a death took %v, want at most %v (Lease+Lease/3, plus 1 s for a busy machine)", took, limit)
	}
	t.Logf("handover after the leader's death: %v (lease %v)", took.Round(time.Millisecond), lease)

	// A clean stop resigns: the third replica leads at its next campaign.
	stopped := time.Now()
	second.halt(t)
	testwait.Within(t, 30*time.Second, "a new leader after a clean stop", func() bool {
		l := leaders(cs)
		return len(l) == 1 && l[0] != first && l[0] != second
	})
	t.Logf("handover after a clean stop: %v", time.Since(stopped).Round(time.Millisecond))
}
