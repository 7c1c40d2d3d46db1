package faults

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/testwait"
)

// seriesLimit is the max-series-per-database InfluxDB starts with: the
// first customers of six keypads (their presence, heartbeat, vote and
// activation series) fill it, and every new operator or service at a
// counter afterwards needs a series it refuses.
const seriesLimit = 30

// TestSeriesLimit is guarantee 8: InfluxDB reaches its series limit in the
// middle of a fleet's traffic. It answers "partial write:
// max-series-per-database limit exceeded", which is not about the points:
// the backend keeps every one of them in its spool, /readyz is 503 and
// says why, and support gets a critical alert (influx_limit) besides the
// 80% warning (influx_series). Then the limit is raised (influxd restarted
// with a larger one on the same data), the spool drains, and every vote
// and activation is in InfluxDB exactly once.
func TestSeriesLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: runs InfluxDB, the backend and a fleet")
	}
	// InfluxDB 1.8 enforces the limit only with the in-memory index.
	db := influxlocal.StartForTestWith(t, influxlocal.Options{IndexVersion: "inmem", MaxSeriesPerDatabase: seriesLimit})
	model := fleet.Generate(fleet.Spec{Seed: 16, Orgs: 1, SitesPerOrg: 2, CountersPerSite: 3, OperatorsPerSite: 4, Services: 6})
	// One point a write: InfluxDB 1.8 refuses all the new series of a
	// batch that would cross the limit, so with large batches the count
	// can stop well below it (6 of 30 seen) and the 80% warning never
	// fires; single points fill the database up to the limit exactly.
	be := newBackend(t, db, model, backendOptions{influxYAML: "  max_series: 30\n  series_check_every: 200ms\n  batch_size: 1\n"})
	be.start()

	const perCounter = 12
	tally, runErr := runFleet(t, be, model, 200*time.Millisecond, perCounter, 60*time.Second)

	// The wall is hit while the fleet votes: /readyz names the limit.
	var readyz string
	testwait.Within(t, 60*time.Second, "/readyz never reported the series limit", func() bool {
		code, body, err := be.get("/readyz")
		readyz = strings.TrimSpace(body)
		return err == nil && code == http.StatusServiceUnavailable && strings.Contains(body, "max-series-per-database")
	})
	atWall := tally.Total()
	if err := <-runErr; err != nil {
		t.Fatalf("fleet run: %v", err)
	}
	total := tally.Total()
	if atWall.Activations >= total.Activations {
		t.Fatalf("the limit was reached only after the fleet finished (%s at the wall): not mid-stream", describe(atWall))
	}

	// Every press is acknowledged (the fleet's outboxes are empty), but
	// InfluxDB holds only part of it: the rest waits in the spool.
	code, body, err := be.get("/readyz")
	if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "max-series-per-database") {
		t.Errorf("/readyz after the fleet finished: %d %q %v, want 503 naming the limit", code, body, err)
	}
	m := be.metrics()
	if m["semko_spool_pending_records"] <= 0 {
		t.Errorf("semko_spool_pending_records = %v at the limit, want > 0", m["semko_spool_pending_records"])
	}
	if r := m["semko_influx_points_rejected_total"]; r != 0 {
		t.Errorf("semko_influx_points_rejected_total = %v: points were skipped for a limit", r)
	}
	before := sumLanded(readLanded(t, db))
	if before.Votes+before.Invalid >= total.Votes+total.Invalid {
		t.Fatalf("all %d presses landed despite the limit: the test did not reach it", before.Votes+before.Invalid)
	}
	var limitAlert, warnAlert string
	testwait.Within(t, 30*time.Second, "no open influx_limit and influx_series alerts", func() bool {
		limitAlert, warnAlert = openAlert(t, be, "influx_limit"), openAlert(t, be, "influx_series")
		return limitAlert != "" && warnAlert != ""
	})
	if !strings.Contains(limitAlert, "critical") || !strings.Contains(limitAlert, "max-series-per-database") {
		t.Errorf("influx_limit alert %s: want critical, naming the limit", limitAlert)
	}
	t.Logf("at the limit: /readyz %q; %v records waiting; landed %s of %s; alerts: %s; %s",
		readyz, m["semko_spool_pending_records"], describe(before), describe(total), brief(limitAlert), brief(warnAlert))

	// The operator raises the limit and restarts influxd on the same data.
	db.SetLimits(10 * seriesLimit * 100)
	if err := db.Restart(t.Context()); err != nil {
		t.Fatalf("restart InfluxDB with a higher limit: %v", err)
	}
	drain := be.waitSpoolEmpty(90 * time.Second)
	testwait.Within(t, 10*time.Second, "/readyz not 200 after the drain", func() bool {
		code, _, err := be.get("/readyz")
		return err == nil && code == http.StatusOK
	})
	testwait.Within(t, 30*time.Second, "influx_limit alert not resolved after the drain", func() bool {
		return openAlert(t, be, "influx_limit") == ""
	})
	if r := be.metric("semko_influx_points_rejected_total"); r != 0 {
		t.Errorf("semko_influx_points_rejected_total = %v after the drain", r)
	}
	landed := checkExact(t, db, tally.Devices(), true)
	t.Logf("guarantee 8: %d units; pressed %s; limit %d series reached mid-stream (at %s); nothing rejected; "+
		"limit raised, drained in %v; landed %d valid votes exactly, in press order",
		len(model.Devices), describe(total), seriesLimit, describe(atWall), drain.Round(time.Millisecond), landed)
}

// openAlert returns the open alert of kind as JSON, "" when none.
func openAlert(t *testing.T, be *backendProc, kind string) string {
	t.Helper()
	code, body, err := be.get("/api/v1/alerts?state=open&kind=" + kind)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET alerts: %d %v %s", code, err, body)
	}
	var answer struct {
		Alerts []json.RawMessage `json:"alerts"`
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil {
		t.Fatalf("alerts answer %q: %v", body, err)
	}
	if len(answer.Alerts) == 0 {
		return ""
	}
	return string(answer.Alerts[0])
}

// brief is an alert's kind, severity and message.
func brief(alertJSON string) string {
	var a struct{ Kind, Severity, Message string }
	if err := json.Unmarshal([]byte(alertJSON), &a); err != nil {
		return alertJSON
	}
	return a.Kind + " (" + a.Severity + "): " + a.Message
}

// sumLanded adds up what InfluxDB holds over all devices.
func sumLanded(m map[string]*landed) fleet.Counts {
	var c fleet.Counts
	for _, l := range m {
		c.Activations += l.Activations
		c.Votes += l.Votes
		c.Invalid += l.Invalid
		for i, n := range l.Scores {
			c.Scores[i] += n
		}
	}
	return c
}
