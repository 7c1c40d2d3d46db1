package faults

import (
	"testing"
	"time"

	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/testwait"
)

// TestBackendKilled is guarantees 1 and 2 (embedded broker): the backend
// process, broker included, is SIGKILLed twice while a fleet votes, and
// started again on the same data directory and ports. Votes acknowledged
// before the kill are in the spool; votes not yet acknowledged are still in
// the edges' outboxes; presses during the outage wait there too.
func TestBackendKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: runs InfluxDB, the backend and a fleet")
	}
	db := influxlocal.StartForTest(t)
	model := fleet.Generate(fleet.Spec{Seed: 11, Orgs: 2, SitesPerOrg: 2, CountersPerSite: 3})
	be := newBackend(t, db, model, backendOptions{})
	be.start()

	tally, runErr := runFleet(t, be, model, 300*time.Millisecond, 14, 90*time.Second)

	kills := 0
	for _, at := range []int{15, 45} { // valid votes taken before each kill
		testwait.Within(t, 60*time.Second, "fleet did not reach the votes for the next kill", func() bool {
			return tally.Total().Votes >= at
		})
		be.kill()
		kills++
		before := tally.Total().Votes
		// The outage lasts until the fleet has taken more votes: they wait
		// in the outboxes.
		testwait.Within(t, 30*time.Second, "fleet took no votes while the backend was down", func() bool {
			return tally.Total().Votes >= before+5
		})
		t.Logf("kill %d: backend SIGKILLed after %d votes taken, restarted after %d", kills, before, tally.Total().Votes)
		be.start()
	}
	if err := <-runErr; err != nil {
		t.Fatalf("fleet run: %v", err)
	}
	drain := be.waitSpoolEmpty(90 * time.Second)
	total := tally.Total()
	landed := checkExact(t, db, tally.Devices(), false)
	m := be.metrics()
	t.Logf("guarantee 1: %d units; pressed %s; %d backend kills; landed %d valid votes exactly; "+
		"duplicates suppressed since the last start %v; spool drained %v after the fleet finished",
		len(model.Devices), describe(total), kills, landed, m["semko_ingest_duplicates_total"], drain.Round(time.Millisecond))
}
