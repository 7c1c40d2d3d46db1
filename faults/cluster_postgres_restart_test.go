package faults

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/natslocal"
	"github.com/semko/semko/internal/pglocal"
	"github.com/semko/semko/internal/testwait"
)

// pgDown is how long TestClusterPostgresRestart keeps PostgreSQL dead:
// more than two roll-up periods.
const pgDown = 2*rollupEvery + 2*time.Second

// storeChangeBound is the longest a store change may take to fail while
// PostgreSQL is down: it must answer, not hang.
const storeChangeBound = 10 * time.Second

// TestClusterPostgresRestart: two backend replicas (real `semko serve`
// processes) on the three-node cluster, their stores in one real
// PostgreSQL, a fleet voting and two `semko-edge` units for alerts.
// While the fleet votes PostgreSQL is SIGKILLed, kept down for more than
// two roll-up periods and started again on its data. Afterwards
//   - every vote pressed is in InfluxDB exactly once, device by device and
//     score by score (ingest does not touch PostgreSQL);
//   - the roll-up ran exactly once in every period from its first run to
//     the end (its slot claims are in NATS KV, not PostgreSQL);
//   - an acknowledgement tried during the outage failed with a 5xx within
//     storeChangeBound, and the same acknowledgement succeeds after;
//   - an alert raised on one replica after the restart is acknowledged
//     through the other, and the raiser shows it: both replicas' stores
//     reconnected;
//   - every vote of 1 the fleet pressed is counted by an alert, those of
//     the outage included (the rating watcher retries a failed raise).
func TestClusterPostgresRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: runs a NATS cluster, InfluxDB, PostgreSQL, two backends and a fleet")
	}
	issuer, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	issuerPub, _ := issuer.PublicKey()
	issuerSeed, _ := issuer.Seed()
	c := natslocal.StartForTest(t, natslocal.Options{Auth: &natslocal.Auth{
		User: clusterUser, Password: clusterSecret, CalloutIssuer: issuerPub}})
	db := influxlocal.StartForTest(t)
	pg := pglocal.StartForTest(t)
	dsn := pg.CreateDB(t)
	model := fleet.Generate(fleet.Spec{Seed: 17, Orgs: 1, SitesPerOrg: 3, CountersPerSite: 2})
	if len(model.Devices) != 6 {
		t.Fatalf("the fleet has %d devices, want 6", len(model.Devices))
	}
	// The fleet votes on the first four devices; the last two are
	// semko-edge units whose presses raise the alerts.
	fleetModel := *model
	fleetModel.Devices = model.Devices[:4]
	hook := &hookRecorder{}
	srv := httptest.NewServer(hook)
	t.Cleanup(srv.Close)

	extra := fmt.Sprintf(`database:
  postgres: %s
rollup:
  every: %s
alerts:
  receivers:
    - {name: techs, webhook: "%s/techs"}
  route:
    receivers: [techs]
    group_wait: 500ms
    group_interval: 1h
    repeat_interval: 1h
  calendars:
    default: {hours: {mon-sun: "00:00-24:00"}}
  ratings: {negative_max: 1, streak_run: 1000}
  tick: 100ms
  check_every: 200ms
`, dsn, rollupEvery, srv.URL)
	replicas := []*backendProc{
		newClusterBackend(t, c, db, model, string(issuerSeed), extra),
		newClusterBackend(t, c, db, model, string(issuerSeed), extra),
	}
	for _, be := range replicas {
		be.start()
	}
	for _, be := range replicas {
		be.waitReady(60 * time.Second)
	}
	units := []*edgeUnit{
		newEdgeUnit(t, model.Devices[4], replicas[0].brokerURL()),
		newEdgeUnit(t, model.Devices[5], replicas[1].brokerURL()),
	}
	for _, u := range units {
		u.start()
		testwait.Within(t, 30*time.Second, "edge "+u.dev.ID+" connected", u.connected)
	}
	ctx := t.Context()

	tally, runErr := runFleet(t, replicas[0], &fleetModel, 400*time.Millisecond, 100, 120*time.Second)
	testwait.Within(t, 90*time.Second, "the first roll-up run with votes", func() bool {
		return len(rollupRuns(t, db)) >= 2
	})

	// Alert X, raised before the outage, is what the outage's store change
	// tries to acknowledge.
	if err := units[0].vote(ctx, 1); err != nil {
		t.Fatal(err)
	}
	x := waitCounterAlert(t, replicas[0], model.Devices[4].Counter, 1)

	// The fault: PostgreSQL dies mid-stream.
	before := tally.Total().Votes
	runsAtKill := len(rollupRuns(t, db))
	pg.Kill()
	killed := time.Now()
	ackPath := fmt.Sprintf("/api/v1/alerts/%d/ack", x.ID)
	code, took, err := timedPost(replicas[1], ackPath, `{"by": "maria", "comment": "during the outage"}`, 2*storeChangeBound)
	if err != nil || code < 500 || took > storeChangeBound {
		t.Errorf("ack during the outage: status %d after %v (%v); want a 5xx within %v", code, took.Round(time.Millisecond), err, storeChangeBound)
	}
	outageAck := fmt.Sprintf("%d in %v", code, took.Round(time.Millisecond))
	testwait.Within(t, 60*time.Second, "votes taken while PostgreSQL is down", func() bool {
		return tally.Total().Votes >= before+10
	})
	for time.Since(killed) < pgDown { // the outage's length is the fault itself, not a wait for state
		time.Sleep(200 * time.Millisecond)
	}
	duringVotes := tally.Total().Votes - before
	runsDuring := len(rollupRuns(t, db)) - runsAtKill
	if err := pg.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	down := time.Since(killed)
	restarted := time.Now()
	t.Logf("PostgreSQL SIGKILLed after %d votes, down %v; %d votes taken and %d roll-up runs written meanwhile; ack during it: %s",
		before, down.Round(100*time.Millisecond), duringVotes, runsDuring, outageAck)

	// The store change that failed succeeds now, on the same replica.
	attempts := 0
	var acked alert.Alert
	testwait.Within(t, 30*time.Second, "the acknowledgement succeeding after the restart", func() bool {
		attempts++
		code, _, err := timedPost(replicas[1], ackPath, `{"by": "maria", "comment": "after the outage"}`, storeChangeBound)
		return err == nil && code == http.StatusOK
	})
	afterAck := time.Since(restarted)
	got := alertTrail(t, replicas[0], x.ID)
	if got.Alert.State != alert.StateAcknowledged || got.Alert.AckedBy != "maria" {
		t.Errorf("alert %d after the restart: %+v; want acknowledged by maria", x.ID, got.Alert)
	}

	// Alert Y, raised after the restart, acknowledged through the replica
	// that did not raise it.
	if err := units[1].vote(ctx, 1); err != nil {
		t.Fatal(err)
	}
	y := waitCounterAlert(t, replicas[1], model.Devices[5].Counter, 1)
	raiser := raisedBy(t, replicas, y.ID)
	other := replicas[1-raiser]
	if code := other.post(fmt.Sprintf("/api/v1/alerts/%d/ack", y.ID), `{"by": "ivan", "comment": "after the restart"}`, &acked); code != http.StatusOK || acked.State != alert.StateAcknowledged {
		t.Fatalf("ack of alert %d through replica %d: %d %+v", y.ID, 2-raiser, code, acked)
	}
	got = alertTrail(t, replicas[raiser], y.ID)
	if got.Alert.State != alert.StateAcknowledged || got.Alert.AckedBy != "ivan" {
		t.Fatalf("replica %d (the raiser) shows %+v, want acknowledged by ivan", raiser+1, got.Alert)
	}
	t.Logf("after the restart: alert %d acknowledged through replica 2 %v after it (%d attempts); alert %d raised on replica %d, acknowledged through replica %d",
		x.ID, afterAck.Round(time.Millisecond), attempts, y.ID, raiser+1, 2-raiser)

	if err := <-runErr; err != nil {
		t.Fatalf("fleet run: %v", err)
	}
	for _, u := range units {
		u.waitDrained(60 * time.Second)
	}
	js := clusterJS(t, c)
	testwait.Within(t, 60*time.Second, "the durable consumer acknowledging everything", func() bool {
		return durablePending(t, js) == 0
	})
	for _, be := range replicas {
		be.waitSpoolEmpty(90 * time.Second)
	}
	want := tally.Devices()
	for _, u := range units {
		want[u.dev.ID] = u.want
	}
	landed := checkExact(t, db, want, false)

	// Every period from the first roll-up run to now ran exactly once,
	// across the outage too.
	periods, first := checkOncePerPeriod(t, db, rollupEvery)
	// Every negative vote of the fleet is counted by an alert, those taken
	// during the outage too: the rating watcher retries a raise the store
	// refused (before it did not, and the outage's votes of 1 raised
	// nothing).
	fleetCounters := map[string]bool{}
	negatives := 0
	for _, dev := range fleetModel.Devices {
		fleetCounters[dev.Counter] = true
		negatives += want[dev.ID].Scores[0]
	}
	var all struct{ Alerts []alert.Alert }
	if code := replicas[0].getJSON("/api/v1/alerts?kind=negative_vote", &all); code != http.StatusOK {
		t.Fatalf("GET alerts: %d", code)
	}
	counted, fleetAlerts := 0, 0
	for _, a := range all.Alerts {
		if fleetCounters[a.Subject.Counter] {
			counted += a.Count
			fleetAlerts++
		}
	}
	if counted != negatives {
		t.Errorf("the fleet pressed %d votes of 1, its %d negative_vote alerts count %d", negatives, fleetAlerts, counted)
	}
	t.Logf("the fleet's negative votes: %d pressed, %d counted by its %d negative_vote alerts", negatives, counted, fleetAlerts)
	var votes []string
	for i, be := range replicas {
		votes = append(votes, fmt.Sprintf("replica %d took %v", i+1, be.labeledMetric(`semko_ingest_messages_total{kind="vote"}`)))
	}
	t.Logf("roll-up: %d periods of %v from %s, each run once; %d units pressed %s, landed %d valid votes exactly; %s",
		periods, rollupEvery, first.UTC().Format("15:04:05"), len(want), describe(sumCounts(want)), landed, strings.Join(votes, ", "))
}

// timedPost sends body to path of be's HTTP API with a client timeout of
// limit: the status code (0 on a transport error), how long the answer
// took, and the transport error.
func timedPost(be *backendProc, path, body string, limit time.Duration) (int, time.Duration, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+be.httpAddr+path, bytes.NewBufferString(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := (&http.Client{Timeout: limit}).Do(req)
	took := time.Since(start)
	if err != nil {
		return 0, took, err
	}
	resp.Body.Close()
	return resp.StatusCode, took, nil
}
