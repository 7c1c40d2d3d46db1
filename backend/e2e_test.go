package backend_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
)

// TestEndToEnd drives a simulated fleet of 54 keypads, each behind a real
// edge agent, through the real embedded broker and the backend into a real
// InfluxDB, and checks that InfluxDB holds exactly what the customers did:
// activations by site, valid votes by site and score, invalid presses.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts InfluxDB and a 54-unit fleet")
	}
	db := influxlocal.StartForTest(t)
	model := fleet.Generate(fleet.Spec{Seed: 7, Orgs: 3, SitesPerOrg: 3, CountersPerSite: 6})
	if n := len(model.Devices); n < 50 {
		t.Fatalf("fleet has %d units, want at least 50", n)
	}
	app := runBackend(t, newTestConfig(t, model, db))
	mqttAddr, httpAddr := app.MQTTAddr(), app.HTTPAddr()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tally, err := fleet.Run(ctx, model, fleet.Options{
		Broker: "tcp://" + mqttAddr, DataDir: t.TempDir(),
		ServiceInterval: 150 * time.Millisecond, Window: 4 * time.Second,
		Participation: 0.7, StrayPresses: 0.05, MaxActivations: 8,
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatalf("fleet run: %v", err)
	}
	total := tally.Total()
	t.Logf("fleet pressed: %d activations, %d valid votes %v, %d invalid, %d unsure",
		total.Activations, total.Votes, total.Scores, total.Invalid, total.Unsure)
	if total.Unsure != 0 {
		t.Fatalf("%d presses or activations with unknown outcome: the comparison would not be exact", total.Unsure)
	}
	if total.Activations != len(model.Devices)*8 {
		t.Fatalf("fleet made %d activations, want %d", total.Activations, len(model.Devices)*8)
	}
	waitWritten(t, app)

	// Activations by site: one point per activation (the closing record
	// overwrote the opening one), all closed.
	gotAct := countBySite(t, db, `SELECT count(voted) FROM activation GROUP BY site`)
	gotClosed := countBySite(t, db, `SELECT sum(closed) FROM activation GROUP BY site`)
	gotVoted := countBySite(t, db, `SELECT sum(voted) FROM activation GROUP BY site`)
	for site, want := range tally.Sites() {
		if gotAct[site] != int64(want.Activations) || gotClosed[site] != int64(want.Activations) {
			t.Errorf("site %s: %d activation points (%d closed), fleet made %d", site, gotAct[site], gotClosed[site], want.Activations)
		}
		if gotVoted[site] != int64(want.Votes) {
			t.Errorf("site %s: %d activations marked voted, fleet cast %d valid votes", site, gotVoted[site], want.Votes)
		}
	}

	// Valid votes by site and score, and invalid presses by site.
	checkVotesBySite(t, db, tally.Sites())
	if len(tally.Sites()) != 9 {
		t.Errorf("tally has %d sites, want 9", len(tally.Sites()))
	}

	// The satisfied share InfluxDB computes is the one the fleet pressed.
	series, err := db.Query(context.Background(), `SELECT mean(satisfied) FROM vote WHERE valid='true'`)
	if err != nil || len(series) != 1 {
		t.Fatalf("mean(satisfied): %v (%d series)", err, len(series))
	}
	share, err := series[0].Float(0, "mean")
	if err != nil {
		t.Fatal(err)
	}
	if want := total.Satisfied(); abs(share-want) > 1e-9 {
		t.Errorf("mean(satisfied) = %.6f, fleet pressed %.6f", share, want)
	}

	// The operational surface agrees.
	for _, path := range []string{"/healthz", "/readyz"} {
		if code := httpGet(t, "http://"+httpAddr+path); code != http.StatusOK {
			t.Errorf("GET %s = %d", path, code)
		}
	}
	body := httpBody(t, "http://"+httpAddr+"/metrics")
	for _, series := range []string{"semko_ingest_messages_total", "semko_influx_points_written_total", "semko_spool_pending_records"} {
		if !strings.Contains(body, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	t.Logf("InfluxDB holds %d activations and %d valid votes, exactly as pressed", sum(gotAct), int64(total.Votes))
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
