package faults

import (
	"testing"
	"time"

	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
)

// TestEdgeKilled is guarantee 5: semko-edge is SIGKILLed right after its
// keypad heard TAKEN for a press, before the vote could be published, and
// restarted. The vote must arrive exactly once.
//
// Phase "offline" makes "before it was published" certain: the backend is
// not running, so every taken press is still in the outbox when the edge
// dies. Phase "online" kills the edge right after TAKEN while the backend
// is up: the vote may or may not have left, and either way it must count
// once.
func TestEdgeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: runs InfluxDB, the backend and semko-edge")
	}
	db := influxlocal.StartForTest(t)
	model := fleet.Generate(fleet.Spec{Seed: 5, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 1})
	be := newBackend(t, db, model, backendOptions{})
	e := newEdgeUnit(t, model.Devices[0], be.brokerURL())
	ctx := t.Context()
	keys := []int{5, 1, 4, 2, 3, 5, 4, 1}
	next := func() int { k := keys[0]; keys = append(keys[1:], k); return k }

	// Offline: three rounds of votes, each ended by a SIGKILL.
	e.start()
	kills := 0
	for round := range 3 {
		for range 2 {
			if err := e.vote(ctx, next()); err != nil {
				t.Fatal(err)
			}
		}
		if n := e.outbox(); n == 0 {
			t.Fatalf("round %d: outbox empty with the backend down", round)
		}
		e.kill()
		kills++
		if round < 2 {
			e.start()
		}
	}
	offline := e.want
	// Backend reachable, then the edge restarts and publishes what it kept.
	be.start()
	e.start()
	e.waitDrained(60 * time.Second)

	// Online: a press, TAKEN, SIGKILL at once: publish and kill race.
	for range 5 {
		if err := e.vote(ctx, next()); err != nil {
			t.Fatal(err)
		}
		e.kill()
		kills++
		e.start()
	}
	drain := e.waitDrained(60 * time.Second)
	be.waitSpoolEmpty(30 * time.Second)
	landed := checkExact(t, db, map[string]fleet.Counts{e.dev.ID: e.want}, true)
	t.Logf("guarantee 5: pressed %s (%d of them taken while the backend was down); %d SIGKILLs of semko-edge "+
		"right after TAKEN; landed %d valid votes exactly once; last outbox drained in %v; duplicates suppressed %v",
		describe(e.want), offline.Votes, kills, landed, drain.Round(time.Millisecond), be.metric("semko_ingest_duplicates_total"))
}
