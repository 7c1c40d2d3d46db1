package faults

import (
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/testwait"
)

// TestSpoolFull is guarantee 7: with InfluxDB down the spool reaches its
// size limit. The backend then stops acknowledging (the broker withholds
// PUBACKs), so the devices keep their votes: edge outboxes grow, the
// broker's intake retries grow, /readyz says the spool is full. Nothing
// already acknowledged is dropped, and once InfluxDB is back everything
// lands exactly once.
func TestSpoolFull(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: runs InfluxDB, the backend and six semko-edge processes")
	}
	db := influxlocal.StartForTest(t)
	model := fleet.Generate(fleet.Spec{Seed: 17, Orgs: 1, SitesPerOrg: 2, CountersPerSite: 3})
	// About thirty points: a few customers' worth.
	be := newBackend(t, db, model, backendOptions{spoolMaxBytes: 8 << 10})
	be.start()
	units := make([]*edgeUnit, len(model.Devices))
	for i, dev := range model.Devices {
		units[i] = newEdgeUnit(t, dev, be.brokerURL())
		units[i].start()
	}
	rng := rand.New(rand.NewPCG(17, 1))
	serve := func(perUnit int) {
		t.Helper()
		for range perUnit {
			for _, u := range units {
				key := 0
				if rng.Float64() < 0.8 {
					key = 1 + rng.IntN(5)
				}
				if err := u.vote(t.Context(), key); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	outboxes := func() int {
		n := 0
		for _, u := range units {
			n += u.outbox()
		}
		return n
	}

	serve(2) // with InfluxDB up: lands at once
	if err := db.Stop(); err != nil {
		t.Fatalf("stop InfluxDB: %v", err)
	}
	serve(8)
	testwait.Within(t, 30*time.Second, "/readyz never said the spool is full", func() bool {
		code, body, err := be.get("/readyz")
		return err == nil && code == http.StatusServiceUnavailable && strings.Contains(body, "spool full")
	})
	m := be.metrics()
	pendingFull, retries := m["semko_spool_pending_records"], m["semko_broker_intake_retries_total"]
	if m["semko_spool_full"] != 1 || pendingFull <= 0 {
		t.Errorf("spool full: semko_spool_full=%v pending=%v, want 1 and > 0", m["semko_spool_full"], pendingFull)
	}
	if retries <= 0 {
		t.Errorf("semko_broker_intake_retries_total = %v while the spool is full, want > 0", retries)
	}
	depth1 := outboxes()
	serve(4) // devices keep taking votes and keep them
	depth2 := outboxes()
	if depth2 <= depth1 {
		t.Errorf("edge outboxes hold %d entries after more votes, %d before: they should grow", depth2, depth1)
	}
	// Nothing acknowledged was dropped: the spool still holds all it took.
	if p := be.metric("semko_spool_pending_records"); p < pendingFull {
		t.Errorf("spool pending fell from %v to %v with InfluxDB down", pendingFull, p)
	}
	log, err := os.ReadFile(be.p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	warned := false
	for line := range strings.Lines(string(log)) {
		warned = warned || strings.Contains(line, "level=WARN") && strings.Contains(line, "spool full")
	}
	if !warned {
		t.Errorf("the backend's log has no warning that the spool is full")
	}

	if err := db.Restart(t.Context()); err != nil {
		t.Fatalf("restart InfluxDB: %v", err)
	}
	back := time.Now()
	for _, u := range units {
		u.waitDrained(2 * time.Minute)
	}
	be.waitSpoolEmpty(60 * time.Second)
	drain := time.Since(back)
	want := map[string]fleet.Counts{}
	for _, u := range units {
		want[u.dev.ID] = u.want
	}
	landed := checkExact(t, db, want, true)
	m = be.metrics()
	t.Logf("guarantee 7: %d units, spool limit 8 KiB, InfluxDB down; pressed %s; spool full at %v records; "+
		"edge outboxes grew %d -> %d entries; broker withheld %v PUBACKs (semko_broker_intake_retries_total, this start); "+
		"all delivered %v after InfluxDB returned; landed %d valid votes exactly, in order",
		len(units), describe(sumCounts(want)), pendingFull, depth1, depth2, m["semko_broker_intake_retries_total"],
		drain.Round(time.Millisecond), landed)
}
