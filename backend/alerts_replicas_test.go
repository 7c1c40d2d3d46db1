package backend_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/alertapi"
	"github.com/semko/semko/backend/alert/calendar"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/pglocal"
	"github.com/semko/semko/internal/testwait"
)

// TestReplicasShareAlerts runs two backends on one real PostgreSQL database
// (database.postgres), each with its own alert manager: an alert raised on
// replica 1 is acknowledged through replica 2's API, replica 1's API shows
// the acknowledgement, and neither replica escalates it afterwards, while
// an alert left alone beside it is escalated exactly once although both
// replicas check deadlines; one finding raised on both replicas at once is
// one alert; a silence added on one mutes on the other.
func TestReplicasShareAlerts(t *testing.T) {
	ctx := context.Background()
	dsn := pglocal.StartForTest(t).CreateDB(t)
	model := fleet.Generate(fleet.Spec{Seed: 14, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 3})
	if len(model.Devices) < 3 {
		t.Fatalf("the fleet has %d devices, want 3", len(model.Devices))
	}
	configure := func() backend.Config {
		cfg := newTestConfig(t, model, nil)
		cfg.Database.Postgres = dsn
		cfg.Alerts.Receivers = []alert.Receiver{{Name: "techs"}, {Name: "lead"}}
		cfg.Alerts.Route = alert.RouteConfig{
			Receivers: []string{"techs"}, Escalate: [][]string{{"lead"}},
			Deadline: 3 * time.Second, GroupWait: 100 * time.Millisecond, GroupInterval: time.Second, RepeatInterval: time.Hour,
		}
		cfg.Alerts.Calendars.Default = calendar.Spec{Hours: map[string]string{"mon-sun": "00:00-24:00"}}
		cfg.Alerts.Tick = 50 * time.Millisecond
		cfg.Alerts.CheckEvery = 100 * time.Millisecond
		return cfg
	}
	var recs []*noticeRecorder
	var apps []*backend.App
	for range 2 {
		app := newApp(t, configure(), testLogger(t))
		rec := &noticeRecorder{}
		if err := app.AddNotifier(rec); err != nil {
			t.Fatal(err)
		}
		startApp(t, app)
		apps, recs = append(apps, app), append(recs, rec)
	}
	r1, r2 := apps[0], apps[1]
	url := func(app *backend.App, path string) string { return "http://" + app.HTTPAddr() + path }
	subject := func(d fleet.Device) alert.Subject {
		return alert.Subject{Org: d.Org, Site: d.Site, Counter: d.Counter, Device: d.ID}
	}
	acked, left := subject(model.Devices[0]), subject(model.Devices[1])

	// Raised on replica 1: one alert to acknowledge, one to leave alone.
	raisedAt := time.Now()
	if err := r1.Alerts().Raise(ctx, alert.Finding{Kind: alert.KindStuckKey, Subject: acked, Message: "key 1 stuck"}); err != nil {
		t.Fatal(err)
	}
	if err := r1.Alerts().Raise(ctx, alert.Finding{Kind: alert.KindStuckKey, Subject: left, Message: "key 5 stuck"}); err != nil {
		t.Fatal(err)
	}
	var list alertapi.ListAnswer
	apiDo(t, "GET", url(r2, "/api/v1/alerts?state=open&device="+acked.Device), "", 200, &list)
	if len(list.Alerts) != 1 {
		t.Fatalf("replica 2 lists %+v; want the alert raised on replica 1", list.Alerts)
	}
	id := list.Alerts[0].ID

	// Acknowledged through replica 2's API.
	var ack alert.Alert
	apiDo(t, "POST", url(r2, fmt.Sprintf("/api/v1/alerts/%d/ack", id)), `{"by": "maria", "comment": "on my way"}`, 200, &ack)
	if ack.State != alert.StateAcknowledged || ack.AckedBy != "maria" {
		t.Fatalf("ack through replica 2: %+v", ack)
	}
	t.Logf("acknowledged through replica 2 %v after replica 1 raised it", time.Since(raisedAt).Round(time.Millisecond))
	var got alertapi.AlertAnswer
	apiDo(t, "GET", url(r1, fmt.Sprintf("/api/v1/alerts/%d", id)), "", 200, &got)
	if got.Alert.State != alert.StateAcknowledged || got.Alert.AckedBy != "maria" {
		t.Fatalf("replica 1 shows %+v; want it acknowledged by maria", got.Alert)
	}
	// Replica 1 finds it again (its memory held it as firing): still
	// acknowledged, counted twice.
	if err := r1.Alerts().Raise(ctx, alert.Finding{Kind: alert.KindStuckKey, Subject: acked, Message: "key 1 stuck"}); err != nil {
		t.Fatal(err)
	}

	// The deadline (3 s) passes: the other alert is escalated, once.
	trail := func(app *backend.App, id int64) alertapi.AlertAnswer {
		var a alertapi.AlertAnswer
		apiDo(t, "GET", url(app, fmt.Sprintf("/api/v1/alerts/%d", id)), "", 200, &a)
		return a
	}
	var leftID int64
	apiDo(t, "GET", url(r1, "/api/v1/alerts?state=open&device="+left.Device), "", 200, &list)
	if len(list.Alerts) != 1 {
		t.Fatalf("the alert left alone: %+v", list.Alerts)
	}
	leftID = list.Alerts[0].ID
	took := testwait.Within(t, 30*time.Second, "the alert left alone is escalated", func() bool {
		return trail(r1, leftID).Alert.Escalation == 1
	})
	t.Logf("escalated %v after it was raised (waited %v)", time.Since(raisedAt).Round(time.Millisecond), took.Round(time.Millisecond))
	time.Sleep(time.Second) // ten more deadline checks on each replica
	got = trail(r1, id)
	if got.Alert.State != alert.StateAcknowledged || got.Alert.Escalation != 0 || got.Alert.Count != 2 {
		t.Errorf("acknowledged alert after its deadline: %+v; want acknowledged, level 0, counted twice", got.Alert)
	}
	for _, ev := range got.Events {
		if ev.Action == alert.ActionEscalated {
			t.Errorf("the acknowledged alert was escalated: %+v", got.Events)
		}
	}
	toLevel1 := 0
	for _, ev := range trail(r2, leftID).Events {
		if ev.Action == alert.ActionEscalated && strings.Contains(ev.Comment, "now with level 1") {
			toLevel1++
		}
	}
	if toLevel1 != 1 {
		t.Errorf("the alert left alone went to level 1 %d times, want once (both replicas check deadlines)", toLevel1)
	}
	for i, rec := range recs {
		levels := map[int64][]int{}
		for _, n := range rec.all() {
			for _, a := range n.Alerts {
				levels[a.ID] = append(levels[a.ID], n.Escalation)
			}
		}
		if slices.Contains(levels[id], 1) {
			t.Errorf("replica %d notified level 1 of the acknowledged alert: %v", i+1, levels)
		}
		t.Logf("replica %d notices by alert and level: %v", i+1, levels)
	}

	// One finding raised on both replicas at once: one alert.
	same := alert.Finding{Kind: alert.KindSilentUnit, Subject: subject(model.Devices[2]), Message: "no votes"}
	const raises = 20
	var wg sync.WaitGroup
	for i := range raises {
		app := apps[i%2]
		wg.Go(func() {
			if err := app.Alerts().Raise(ctx, same); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	apiDo(t, "GET", url(r2, "/api/v1/alerts?kind=silent_unit"), "", 200, &list)
	if len(list.Alerts) != 1 || list.Alerts[0].Count != raises {
		t.Fatalf("%d raises of one finding on two replicas: %+v; want one alert counted %d times", raises, list.Alerts, raises)
	}

	// A silence added through replica 2 mutes on replica 1.
	apiDo(t, "POST", url(r2, "/api/v1/silences"), `{"matchers": {"kind": "silent_unit"}, "duration": "1h", "created_by": "ops"}`, 201, nil)
	testwait.Within(t, 10*time.Second, "replica 1 mutes by replica 2's silence", func() bool {
		apiDo(t, "GET", url(r1, "/api/v1/alerts?kind=silent_unit"), "", 200, &list)
		return len(list.Alerts) == 1 && strings.HasPrefix(list.Alerts[0].MutedBy, "silence ")
	})
}
