package faults

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/testwait"
)

// busyRate is the traffic of a busy counter: one completed service a minute.
// The outage test compresses time: the fleet serves as many customers during
// the outage as busyRate would bring in at least ten minutes.
const busyRate = 1.0 / 60 // activations per counter per second

// TestInfluxOutage is guarantee 3: InfluxDB is stopped for at least ten
// minutes of a busy fleet's traffic (time compressed). The backend keeps
// acknowledging votes into its spool, says so in /readyz and /metrics, and
// when InfluxDB returns drains the backlog: exact counts, and each device's
// points in the order pressed.
func TestInfluxOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: runs InfluxDB, the backend and a fleet")
	}
	db := influxlocal.StartForTest(t)
	model := fleet.Generate(fleet.Spec{Seed: 23, Orgs: 2, SitesPerOrg: 2, CountersPerSite: 3})
	be := newBackend(t, db, model, backendOptions{})
	be.start()

	// Enough that the outage still holds 10 busy minutes when InfluxDB
	// stops late on a loaded machine (13 gave 5.7 once in CI).
	const perCounter = 20
	tally, runErr := runFleet(t, be, model, 250*time.Millisecond, perCounter, 60*time.Second)

	// Mid-stream: once every counter has served about one customer.
	testwait.Within(t, 60*time.Second, "fleet did not start voting", func() bool {
		return tally.Total().Activations >= len(model.Devices)
	})
	if err := db.Stop(); err != nil {
		t.Fatalf("stop InfluxDB: %v", err)
	}
	down := time.Now()
	atStop := tally.Total()

	// The fleet finishes; its run returns once every edge outbox is empty,
	// that is once the backend has acknowledged (spooled) everything.
	if err := <-runErr; err != nil {
		t.Fatalf("fleet run while InfluxDB is down: %v", err)
	}
	total := tally.Total()
	during := total.Activations - atStop.Activations
	minutes := float64(during) / float64(len(model.Devices)) / busyRate / 60
	if minutes < 10 {
		t.Fatalf("only %d activations during the outage: %.1f busy minutes, want at least 10", during, minutes)
	}

	code, body, err := be.get("/readyz")
	if err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the outage: %d %q %v, want 503", code, body, err)
	}
	if !strings.Contains(body, "pending") && !strings.Contains(body, "backlog") {
		t.Errorf("/readyz does not report the backlog: %q", body)
	}
	m := be.metrics()
	backlog := m["semko_spool_pending_records"]
	if backlog <= 0 {
		t.Errorf("semko_spool_pending_records = %v during the outage, want > 0", backlog)
	}
	t.Logf("during the outage: /readyz %d %q; %v records spooled", code, strings.TrimSpace(body), backlog)

	if err := db.Restart(t.Context()); err != nil {
		t.Fatalf("restart InfluxDB: %v", err)
	}
	outage := time.Since(down)
	drain := be.waitSpoolEmpty(90 * time.Second)
	testwait.Within(t, 10*time.Second, "/readyz not 200 after the drain", func() bool {
		code, _, err := be.get("/readyz")
		return err == nil && code == http.StatusOK
	})
	landed := checkExact(t, db, tally.Devices(), true)
	t.Logf("guarantee 3: %d units; pressed %s; InfluxDB down %v while %d activations (%.1f busy minutes) came in; "+
		"backlog %v records; drained in %v after InfluxDB returned; landed %d valid votes exactly, in press order",
		len(model.Devices), describe(total), outage.Round(time.Millisecond), during, minutes, backlog,
		drain.Round(time.Millisecond), landed)
}
