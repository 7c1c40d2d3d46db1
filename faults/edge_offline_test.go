package faults

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/testwait"
)

// dayOfCustomers is a busy counter's day: eight hours, a customer every
// two minutes.
const dayOfCustomers = 8 * 60 / 2

// TestEdgeOfflineForADay is guarantee 4: an edge whose broker is
// unreachable for a day's worth of customers keeps every vote in its
// outbox, and delivers them all once the backend is back. It runs with the
// edge's and the broker's defaults (publish timeout 10 s, 16 in flight,
// rate limit 50/s with a burst of 200) and reports how long the drain took.
func TestEdgeOfflineForADay(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: runs InfluxDB, the backend and semko-edge")
	}
	db := influxlocal.StartForTest(t)
	model := fleet.Generate(fleet.Spec{Seed: 3, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 1})
	be := newBackend(t, db, model, backendOptions{})
	e := newEdgeUnit(t, model.Devices[0], be.brokerURL())
	e.start()

	rng := rand.New(rand.NewPCG(3, 4))
	offlineStart := time.Now()
	for range dayOfCustomers {
		key := 0
		if rng.Float64() < 0.7 {
			key = 1 + rng.IntN(5)
		}
		if err := e.vote(t.Context(), key); err != nil {
			t.Fatal(err)
		}
	}
	pressing := time.Since(offlineStart)
	queued := e.outbox()
	if queued < e.want.Activations+e.want.Votes {
		t.Fatalf("outbox holds %d entries, want at least %d (activations and votes)", queued, e.want.Activations+e.want.Votes)
	}

	be.start()
	back := time.Now()
	reconnect := testwait.Within(t, 3*time.Minute, "edge did not reconnect", e.connected)
	drain := e.waitDrained(3 * time.Minute)
	be.waitSpoolEmpty(30 * time.Second)
	landed := checkExact(t, db, map[string]fleet.Counts{e.dev.ID: e.want}, true)

	st, err := e.stats()
	if err != nil {
		t.Fatal(err)
	}
	m := be.metrics()
	t.Logf("guarantee 4: one counter offline for %d customers (a day at one every 2 min; pressed in %v): %s; "+
		"outbox %d entries; reconnected %v after the backend came back (edge backoff); outbox drained in %v "+
		"(%.0f entries/s); edge published %d, resent %d; broker rate-limited %v publishes; landed %d valid votes exactly, in order; total %v",
		dayOfCustomers, pressing.Round(time.Millisecond), describe(e.want), queued, reconnect.Round(time.Millisecond),
		drain.Round(time.Millisecond), float64(queued)/drain.Seconds(), st.Published, st.Resent,
		m["semko_broker_rate_limited_total"], landed, time.Since(back).Round(time.Millisecond))
}
