package backend_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/edge"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/firmware-sim/keypad"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/testwait"
)

// noticeRecorder is a Notifier that keeps what it is given.
type noticeRecorder struct {
	mu      sync.Mutex
	notices []alert.Notice
}

func (r *noticeRecorder) Notify(_ context.Context, n alert.Notice) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notices = append(r.notices, n)
	return false, nil
}

func (r *noticeRecorder) all() []alert.Notice {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]alert.Notice(nil), r.notices...)
}

// TestNegativeVoteNotice follows a customer's two negative presses at one
// counter: simulated keypad -> edge -> broker -> ingest -> rating watcher ->
// alert manager -> one notice to the counter's responsible person, with
// the operator, service and duration; the alert is in the API, is
// acknowledged through it, and each state change is an `alert` point in
// InfluxDB.
func TestNegativeVoteNotice(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts InfluxDB")
	}
	db := influxlocal.StartForTest(t)
	model := fleet.Generate(fleet.Spec{Seed: 11, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 1, OperatorsPerSite: 2})
	dev := model.Devices[0]
	site := model.Orgs[0].Sites[0]
	// The activation names an operator and a service the registry knows,
	// other than the counter's defaults: the notice must carry these. (An
	// unregistered one would give way to the counter's defaults.)
	counter := site.Counters[0]
	var opID, svcID string
	for _, o := range model.Operators {
		if o.Org == dev.Org && o.ID != counter.Operator {
			opID = o.ID
		}
	}
	for _, s := range model.Services {
		if s.ID != counter.Service {
			svcID = s.ID
		}
	}
	if opID == "" || svcID == "" {
		t.Fatalf("the fleet has no second operator or service (%d operators, %d services)", len(model.Operators), len(model.Services))
	}

	cfg := newTestConfig(t, model, db)
	// Group wait long enough for both presses to land in one notice.
	cfg.Alerts.Route = alert.RouteConfig{Routes: []alert.RouteConfig{{
		Match: alert.Matchers{"kind": "negative_vote"}, Receivers: []string{alert.ReceiverResponsible},
		GroupWait: 8 * time.Second, GroupInterval: time.Hour,
	}}}
	cfg.Alerts.Tick = 50 * time.Millisecond
	app := newApp(t, cfg, testLogger(t))
	rec := &noticeRecorder{}
	if err := app.AddNotifier(rec); err != nil {
		t.Fatal(err)
	}
	startApp(t, app)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	httpAddr := app.HTTPAddr()

	kp, agent := startEdge(t, ctx, edge.Config{
		Device: dev.ID, Secret: dev.Secret, Broker: "tcp://" + app.MQTTAddr(), DataDir: t.TempDir(),
		ReconnectMin: 50 * time.Millisecond, Logger: testLogger(t),
	}, keypad.Options{Serial: dev.Serial})
	testwait.For(t, "edge connected", func() bool { return agent.Stats().Connected })

	api := func(method, path, body string, out any) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+httpAddr+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}
	for i, ticket := range []string{"A101", "A102"} {
		body := fmt.Sprintf(`{"v":1,"id":"done-%s","ticket":"%s","service":%q,"operator":%q,"service_s":%d,"window_s":30}`, ticket, ticket, svcID, opID, 300+60*i)
		if code := api("POST", "/api/v1/devices/"+dev.ID+"/activate", body, nil); code != http.StatusAccepted {
			t.Fatalf("activate: %d", code)
		}
		testwait.For(t, "keypad armed", func() bool { return kp.State().Armed })
		if err := kp.Press(ctx, 1); err != nil {
			t.Fatalf("press: %v", err)
		}
		testwait.For(t, "keypad disarmed", func() bool { return !kp.State().Armed })
	}

	testwait.For(t, "a notice", func() bool { return len(rec.all()) > 0 })
	n := rec.all()[0]
	if n.Kind != alert.KindNegativeVote || len(n.Alerts) != 1 {
		t.Fatalf("notice = %+v, want one negative_vote alert", n)
	}
	if len(n.Receiver.Email) != 1 || n.Receiver.Email[0] != site.Responsible.Email || n.Lang != cmp.Or(site.Responsible.Lang, "en") {
		t.Errorf("receiver %+v lang %s, want the site's responsible %+v", n.Receiver, n.Lang, site.Responsible)
	}
	a := n.Alerts[0]
	if a.Count != 2 {
		t.Errorf("alert counts %d votes, want both presses in one notice", a.Count)
	}
	for key, want := range map[string]string{"operator": opID, "service": svcID, "score": "1"} {
		if a.Details[key] != want {
			t.Errorf("details[%s] = %q, want %q (%v)", key, a.Details[key], want, a.Details)
		}
	}
	if a.Details["service_duration"] == "" || a.Details["local_time"] == "" || a.Details["counter_name"] == "" {
		t.Errorf("details lack duration, time or counter: %v", a.Details)
	}

	// The same alert through the API: one open alert for the counter.
	var list struct{ Alerts []alert.Alert }
	if code := api("GET", "/api/v1/alerts?state=open&kind=negative_vote", "", &list); code != 200 || len(list.Alerts) != 1 {
		t.Fatalf("GET alerts: %d %+v", code, list)
	}
	var acked alert.Alert
	if code := api("POST", fmt.Sprintf("/api/v1/alerts/%d/ack", list.Alerts[0].ID), `{"by":"maria","comment":"spoke to the customer"}`, &acked); code != 200 || acked.State != alert.StateAcknowledged {
		t.Fatalf("ack: %d %+v", code, acked)
	}

	// Raised and acknowledged, as `alert` points for Grafana.
	waitWritten(t, app)
	series, err := db.Query(ctx, `SELECT state, message FROM alert WHERE kind='negative_vote'`)
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, s := range series {
		for i := range s.Values {
			st, _ := s.Text(i, "state")
			states = append(states, st)
		}
	}
	if strings.Join(states, ",") != "firing,acknowledged" {
		t.Errorf("alert points %v, want firing then acknowledged", states)
	}
	if got := len(rec.all()); got != 1 {
		t.Errorf("%d notices, want exactly one", got)
	}
}
