package backend_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/health/diagnostics"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/firmware-sim/keypad"
	"github.com/semko/semko/fleet/devconfig"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/testwait"
)

// TestDiagnosticsWired runs the whole backend with two simulated units,
// one with a dead backlight, and checks the finding travels the wired
// path: live state -> scheduled check -> alert manager (open alert in its
// store) -> `alert` point in InfluxDB; and that the healthy unit has no
// alert at all.
func TestDiagnosticsWired(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts InfluxDB")
	}
	db := influxlocal.StartForTest(t)
	model := fleet.Generate(fleet.Spec{Seed: 21, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 2})
	healthy, broken := model.Devices[0], model.Devices[1]

	cfg := newTestConfig(t, model, db)
	cfg.Rollup.Disabled = true
	cfg.Diagnostics.Schedule = map[string]string{}
	for _, c := range diagnostics.Checks {
		cfg.Diagnostics.Schedule[c] = "off"
	}
	cfg.Diagnostics.Schedule[diagnostics.CheckHardware] = "200ms"
	cfg.Diagnostics.Schedule[diagnostics.CheckOffline] = "200ms"
	// Heartbeats every second, through the organisation's remote config.
	one := 1
	writeFleetWithConfig(t, model, cfg.FleetFile, map[string]*devconfig.Override{model.Orgs[0].ID: {HeartbeatS: &one}})

	app := runBackend(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	fleetCtx, stopFleet := context.WithCancel(ctx)
	fleetDone := make(chan struct{})
	go func() {
		defer close(fleetDone)
		fleet.Run(fleetCtx, model, fleet.Options{
			Broker: "tcp://" + app.MQTTAddr(), DataDir: t.TempDir(),
			ServiceInterval: 500 * time.Millisecond, Window: time.Second, Participation: 1,
			DrainTimeout: time.Second, Logger: testLogger(t),
			NewKeypadOptions: func(d fleet.Device) keypad.Options {
				return keypad.Options{DeadBacklight: d.ID == broken.ID}
			},
		})
	}()
	defer func() { stopFleet(); <-fleetDone }()

	open := func(device string) []alert.Alert {
		list, err := app.Alerts().List(ctx, alert.Filter{State: "open", Device: device})
		if err != nil {
			t.Fatal(err)
		}
		return list
	}
	testwait.For(t, "dead backlight alert", func() bool {
		for _, a := range open(broken.ID) {
			if a.Kind == alert.KindDeadBacklight {
				return true
			}
		}
		return false
	})
	// The healthy unit has beaten a few times meanwhile: nothing for it.
	testwait.For(t, "healthy unit heard", func() bool {
		return app.Summary().UnitsOnline == 2
	})
	if list := open(healthy.ID); len(list) != 0 {
		t.Errorf("healthy unit has alerts: %+v", list)
	}
	if list := open(broken.ID); len(list) != 1 {
		t.Errorf("broken unit has %d alerts, want only dead_backlight: %+v", len(list), list)
	}
	// Support sees the finding and can run a check at once.
	for _, call := range []struct{ method, path, want string }{
		{"GET", "/api/v1/diagnostics", `"kind":"dead_backlight"`},
		{"POST", "/api/v1/diagnostics/selftest", `"ran":"selftest"`},
	} {
		req, _ := http.NewRequestWithContext(ctx, call.method, "http://"+app.HTTPAddr()+call.path, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), call.want) {
			t.Errorf("%s %s = %d %s", call.method, call.path, resp.StatusCode, body)
		}
	}
	testwait.For(t, "alert point in InfluxDB", func() bool {
		series, err := db.Query(ctx, `SELECT count(state) FROM alert WHERE kind='dead_backlight' AND device='`+broken.ID+`'`)
		if err != nil || len(series) == 0 {
			return false
		}
		n, err := series[0].Int(0, series[0].Columns[1])
		return err == nil && n >= 1
	})
}
