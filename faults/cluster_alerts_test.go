package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/notify/webhook"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/natslocal"
	"github.com/semko/semko/internal/pglocal"
	"github.com/semko/semko/internal/testwait"
)

// alertDeadline is the escalation deadline in TestClusterAlertsSharedPostgres
// (working time on an always-open calendar, so elapsed time).
const alertDeadline = 4 * time.Second

// votesC is how many votes of 1 counter C gets, the site's only counter,
// in TestClusterAlertsSharedPostgres: the streak and the minimum of votes
// for a share are set to it.
const votesC = 8

// TestClusterAlertsSharedPostgres: two backend replicas (real `semko serve`
// processes) on the three-node cluster, their stores in one real
// PostgreSQL, notices to a webhook. Real edge units press 1 (negative
// votes, taken by whichever replica the shared durable hands them to):
//   - the alert of counter A is acknowledged through the replica that did
//     not raise it; the raiser's API shows the acknowledgement; it is never
//     escalated and its next level never hears of it;
//   - the alert of counter B is left alone: the cluster sends its first
//     notice once and escalates it once, to one notice for the next level,
//     although both replicas run a manager (dispatch and deadlines on the
//     schedule's lease holder);
//   - counter C's votes, spread over both replicas, are one alert that
//     counts them all, and the site's run of them (negative_streak) and
//     its satisfied share (satisfaction_drop) are judged from all of them:
//     the threshold is the whole run, more than either replica takes.
func TestClusterAlertsSharedPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: runs a NATS cluster, InfluxDB, PostgreSQL, two backends and edge units")
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
	dsn := pglocal.StartForTest(t).CreateDB(t)
	model := fleet.Generate(fleet.Spec{Seed: 16, Orgs: 1, SitesPerOrg: 3, CountersPerSite: 1})
	if len(model.Devices) != 3 {
		t.Fatalf("the fleet has %d devices, want 3", len(model.Devices))
	}
	hook := &hookRecorder{}
	srv := httptest.NewServer(hook)
	t.Cleanup(srv.Close)

	extra := fmt.Sprintf(`database:
  postgres: %s
alerts:
  receivers:
    - {name: techs, webhook: "%s/techs"}
    - {name: lead, webhook: "%s/lead"}
  route:
    receivers: [techs]
    escalate: [[lead]]
    deadline: %s
    group_wait: 500ms
    group_interval: 1h
    repeat_interval: 1h
  calendars:
    default: {hours: {mon-sun: "00:00-24:00"}}
  ratings: {negative_max: 1, streak_run: %d, min_votes: %d}
  tick: 100ms
  check_every: 200ms
`, dsn, srv.URL, srv.URL, alertDeadline, votesC, votesC)
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
	leader := -1
	testwait.Within(t, 30*time.Second, "one replica leading the schedule", func() bool {
		for i, be := range replicas {
			if be.metric("semko_elector_leader") == 1 {
				leader = i
			}
		}
		return leader >= 0
	})

	units := make([]*edgeUnit, 3)
	for i, dev := range model.Devices {
		units[i] = newEdgeUnit(t, dev, replicas[0].brokerURL())
		units[i].start()
		testwait.Within(t, 30*time.Second, "edge "+dev.ID+" connected", units[i].connected)
	}
	ctx := t.Context()

	// Counter A: raised where the vote landed, acknowledged through the other.
	if err := units[0].vote(ctx, 1); err != nil {
		t.Fatal(err)
	}
	a := waitCounterAlert(t, replicas[0], model.Devices[0].Counter, 1)
	raiser := raisedBy(t, replicas, a.ID)
	other := replicas[1-raiser]
	var acked alert.Alert
	if code := other.post(fmt.Sprintf("/api/v1/alerts/%d/ack", a.ID), `{"by": "maria", "comment": "on my way"}`, &acked); code != http.StatusOK || acked.State != alert.StateAcknowledged {
		t.Fatalf("ack through replica %d: %d %+v", 2-raiser, code, acked)
	}
	got := alertTrail(t, replicas[raiser], a.ID)
	if got.Alert.State != alert.StateAcknowledged || got.Alert.AckedBy != "maria" {
		t.Fatalf("replica %d (the raiser) shows %+v, want acknowledged by maria", raiser+1, got.Alert)
	}
	t.Logf("counter A's alert %d raised on replica %d, acknowledged through replica %d; replica %d leads the schedule",
		a.ID, raiser+1, 2-raiser, leader+1)

	// Counter B: left alone.
	if err := units[1].vote(ctx, 1); err != nil {
		t.Fatal(err)
	}
	b := waitCounterAlert(t, replicas[1], model.Devices[1].Counter, 1)

	// Counter C: votes spread over the replicas.
	for range votesC {
		if err := units[2].vote(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	cAlert := waitCounterAlert(t, replicas[0], model.Devices[2].Counter, votesC)
	siteC := model.Devices[2].Site
	for _, kind := range []alert.Kind{alert.KindNegativeStreak, alert.KindSatisfactionDrop} {
		testwait.Within(t, 30*time.Second, fmt.Sprintf("site %s's %s alert", siteC, kind), func() bool {
			var list struct{ Alerts []alert.Alert }
			if code := replicas[1].getJSON("/api/v1/alerts?state=open&kind="+string(kind), &list); code != http.StatusOK {
				return false
			}
			for _, a := range list.Alerts {
				if a.Subject.Site == siteC && a.Subject.Counter == "" {
					return true
				}
			}
			return false
		})
	}

	// B escalates once; then a few more deadline periods pass.
	testwait.Within(t, 30*time.Second, "counter B's alert escalated", func() bool {
		return alertTrail(t, replicas[0], b.ID).Alert.Escalation == 1
	})
	time.Sleep(2 * alertDeadline) // the fault window is time itself: more deadline checks on the leader

	got = alertTrail(t, replicas[raiser], a.ID)
	if got.Alert.State != alert.StateAcknowledged || got.Alert.Escalation != 0 {
		t.Errorf("counter A's alert after its deadline: %+v; want acknowledged at level 0", got.Alert)
	}
	for _, ev := range got.Events {
		if ev.Action == alert.ActionEscalated {
			t.Errorf("counter A's acknowledged alert escalated: %+v", ev)
		}
	}
	toLevel1 := 0
	for _, ev := range alertTrail(t, replicas[1], b.ID).Events {
		if ev.Action == alert.ActionEscalated && strings.Contains(ev.Comment, "now with level 1") {
			toLevel1++
		}
	}
	if toLevel1 != 1 {
		t.Errorf("counter B's alert went to level 1 %d times, want once", toLevel1)
	}
	notices := hook.byAlert()
	if n := notices[a.ID]["lead/1"]; n != 0 {
		t.Errorf("the lead heard %d times of counter A's acknowledged alert", n)
	}
	if n := notices[b.ID]["techs/0"]; n != 1 {
		t.Errorf("techs heard %d times of counter B's alert, want once per cluster (%v)", n, notices[b.ID])
	}
	if n := notices[b.ID]["lead/1"]; n != 1 {
		t.Errorf("the lead heard %d times of counter B's escalated alert, want once per cluster (%v)", n, notices[b.ID])
	}
	var open struct{ Alerts []alert.Alert }
	if code := replicas[1].getJSON("/api/v1/alerts?state=open&kind=negative_vote", &open); code != http.StatusOK {
		t.Fatalf("GET alerts: %d", code)
	}
	sameCounter := 0
	for _, x := range open.Alerts {
		if x.Subject.Counter == model.Devices[2].Counter {
			sameCounter++
		}
	}
	if sameCounter != 1 {
		t.Errorf("counter C has %d open negative_vote alerts, want one (%+v)", sameCounter, open.Alerts)
	}
	var votes []string
	for i, be := range replicas {
		votes = append(votes, fmt.Sprintf("replica %d took %v", i+1, be.labeledMetric(`semko_ingest_messages_total{kind="vote"}`)))
	}
	t.Logf("notices by alert (receiver/level: count): A %v, B %v, C %v; counter C: alert %d counted %d votes; votes: %s",
		notices[a.ID], notices[b.ID], notices[cAlert.ID], cAlert.ID, cAlert.Count, strings.Join(votes, ", "))
}

// hookRecorder is the webhook receivers' endpoint: it counts the notices
// by alert, receiver and level.
type hookRecorder struct {
	mu    sync.Mutex
	posts []webhook.Payload
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var p webhook.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.posts = append(h.posts, p)
	h.mu.Unlock()
}

// byAlert counts notices: alert id -> "receiver/level" -> count.
func (h *hookRecorder) byAlert() map[int64]map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[int64]map[string]int{}
	for _, p := range h.posts {
		for _, a := range p.Alerts {
			if out[a.ID] == nil {
				out[a.ID] = map[string]int{}
			}
			out[a.ID][p.Receiver+"/"+strconv.Itoa(p.Escalation)]++
		}
	}
	return out
}

// waitCounterAlert waits for the open negative_vote alert of a counter to
// have counted at least count votes, through be's API.
func waitCounterAlert(t *testing.T, be *backendProc, counter string, count int) alert.Alert {
	t.Helper()
	var found alert.Alert
	testwait.Within(t, 60*time.Second, fmt.Sprintf("counter %s's negative_vote alert counting %d", counter, count), func() bool {
		var list struct{ Alerts []alert.Alert }
		if code := be.getJSON("/api/v1/alerts?state=open&kind=negative_vote", &list); code != http.StatusOK {
			return false
		}
		for _, a := range list.Alerts {
			if a.Subject.Counter == counter && a.Count >= count {
				found = a
				return true
			}
		}
		return false
	})
	return found
}

// raisedBy is the index of the replica whose log says it raised alert id.
func raisedBy(t *testing.T, replicas []*backendProc, id int64) int {
	t.Helper()
	re := regexp.MustCompile(`alert raised.*(id=|"id":)` + strconv.FormatInt(id, 10) + `\b`)
	for i, be := range replicas {
		log, err := os.ReadFile(be.p.logPath)
		if err != nil {
			t.Fatal(err)
		}
		if re.Match(log) {
			return i
		}
	}
	t.Fatalf("no replica's log says it raised alert %d", id)
	return -1
}

type trail struct {
	Alert  alert.Alert   `json:"alert"`
	Events []alert.Event `json:"events"`
}

func alertTrail(t *testing.T, be *backendProc, id int64) trail {
	t.Helper()
	var tr trail
	if code := be.getJSON(fmt.Sprintf("/api/v1/alerts/%d", id), &tr); code != http.StatusOK {
		t.Fatalf("GET alert %d: %d", id, code)
	}
	return tr
}

// getJSON fetches path of the HTTP API into out; the status code, 0 when
// the request failed.
func (b *backendProc) getJSON(path string, out any) int {
	code, body, err := b.get(path)
	if err != nil {
		return 0
	}
	if code == http.StatusOK {
		if err := json.Unmarshal([]byte(body), out); err != nil {
			b.t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	}
	return code
}

// post sends body to path of the HTTP API and decodes the answer into out.
func (b *backendProc) post(path, body string, out any) int {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+b.httpAddr+path, bytes.NewBufferString(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		b.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			b.t.Fatalf("POST %s: %v in %s", path, err, raw)
		}
	}
	return resp.StatusCode
}

// labeledMetric is one series of /metrics, named with its labels as
// exposed (`name{label="value"}`); 0 when absent.
func (b *backendProc) labeledMetric(series string) float64 {
	b.t.Helper()
	code, body, err := b.get("/metrics")
	if err != nil || code != http.StatusOK {
		b.t.Fatalf("GET /metrics: %d %v", code, err)
	}
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
	}
	return 0
}
