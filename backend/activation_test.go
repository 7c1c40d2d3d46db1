package backend_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/semko/semko/edge"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/firmware-sim/keypad"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/testwait"
)

// TestActivationThroughAPI follows the queue-system path: an activation
// posted to the backend's HTTP API travels over MQTT to the edge agent,
// which arms the keypad; the customer's press lands in InfluxDB carrying the
// service, operator and activation id the queue system sent.
func TestActivationThroughAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts InfluxDB")
	}
	db := influxlocal.StartForTest(t)
	model := fleet.Generate(fleet.Spec{Seed: 3, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 1, OperatorsPerSite: 2})
	app := runBackend(t, newTestConfig(t, model, db))
	mqttAddr, httpAddr := app.MQTTAddr(), app.HTTPAddr()
	dev := model.Devices[0]
	// A registered operator other than the counter's default (ingest keeps
	// only registered operators of the device's organisation as tags).
	var opID string
	for _, o := range model.Operators {
		if o.ID != model.Orgs[0].Sites[0].Counters[0].Operator {
			opID = o.ID
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kp, agent := startEdge(t, ctx, edge.Config{
		Device: dev.ID, Secret: dev.Secret, Broker: "tcp://" + mqttAddr, DataDir: t.TempDir(),
		ReconnectMin: 50 * time.Millisecond, Logger: testLogger(t),
	}, keypad.Options{Serial: dev.Serial})
	testwait.For(t, "edge connected", func() bool { return agent.Stats().Connected })

	body := `{"v":1,"id":"ticket-A113-done","ticket":"A113","service":"passport","operator":"` + opID + `","service_s":245,"window_s":30}`
	apiDo(t, http.MethodPost, "http://"+httpAddr+"/api/v1/devices/"+dev.ID+"/activate", body, http.StatusAccepted, nil)
	testwait.For(t, "keypad armed", func() bool { return kp.State().Armed })
	if err := kp.Press(ctx, 5); err != nil {
		t.Fatalf("press: %v", err)
	}
	testwait.For(t, "outbox drained", func() bool { return agent.Stats().Outbox == 0 })
	waitWritten(t, app)

	series, err := db.Query(ctx, `SELECT score, activation, service_s, operator, service FROM vote WHERE valid='true'`)
	if err != nil {
		t.Fatal(err)
	}
	if len(series) != 1 || len(series[0].Values) != 1 {
		t.Fatalf("want one valid vote, got %+v", series)
	}
	s := series[0]
	if score, _ := s.Int(0, "score"); score != 5 {
		t.Errorf("score = %d, want 5", score)
	}
	for col, want := range map[string]string{"activation": "ticket-A113-done", "operator": opID, "service": "passport"} {
		if got, _ := s.Text(0, col); got != want {
			t.Errorf("%s = %q, want %q", col, got, want)
		}
	}
	if got, _ := s.Int(0, "service_s"); got != 245 {
		t.Errorf("service_s = %d, want 245", got)
	}
	act, err := db.Query(ctx, `SELECT voted, closed, ticket FROM activation`)
	if err != nil || len(act) != 1 || len(act[0].Values) != 1 {
		t.Fatalf("activation points: %v %+v", err, act)
	}
	if voted, _ := act[0].Int(0, "voted"); voted != 1 {
		t.Errorf("activation voted = %d, want 1", voted)
	}
}
