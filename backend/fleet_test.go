package backend_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/backend/fleet/fleetapi"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/edge"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/firmware-sim/keypad"
	"github.com/semko/semko/fleet/devconfig"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/internal/testwait"
)

// TestRemoteConfig runs the backend with its embedded broker and four real
// edge agents, each with a simulated keypad, and checks that configuration
// resolves org < site < device, reaches the keypads' fronts, is confirmed
// back (desired = applied in the API), follows a change made through the
// API, and that an invalid override is refused with a clear error.
func TestRemoteConfig(t *testing.T) {
	model := fleet.Generate(fleet.Spec{Seed: 11, Orgs: 1, SitesPerOrg: 2, CountersPerSite: 2})
	org := model.Orgs[0].ID
	siteA, siteB := model.Orgs[0].Sites[0], model.Orgs[0].Sites[1]
	special := siteB.Counters[1].Device // has its own device-level override

	cfg := newTestConfig(t, model, nil) // no InfluxDB needed: nothing here is written
	writeFleetWithConfig(t, model, cfg.FleetFile, map[string]*devconfig.Override{
		org:              {Panel: &devconfig.PanelOverride{Lang: ptr("bg"), Texts: map[string]string{"bg": "Org text", "en": "Org text en"}}, Backlight: &devconfig.BacklightOverride{Level: ptr(70)}},
		siteA.ID:         {Panel: &devconfig.PanelOverride{Texts: map[string]string{"bg": "Site A text"}}},
		"dev:" + special: {Backlight: &devconfig.BacklightOverride{Level: ptr(33)}, Panel: &devconfig.PanelOverride{Lang: ptr("en")}},
	})

	app := newApp(t, cfg, testLogger(t))
	stop := startApp(t, app)
	t.Cleanup(func() { _ = stop() }) // Run's error is not checked
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base := "http://" + app.HTTPAddr()

	pads := startUnits(t, ctx, model, "tcp://"+app.MQTTAddr())

	want := func(panel string, light int) struct {
		panel string
		light int
	} {
		return struct {
			panel string
			light int
		}{panel, light}
	}
	expect := map[string]struct {
		panel string
		light int
	}{
		siteA.Counters[0].Device: want("Site A text", 70), // site over org
		siteA.Counters[1].Device: want("Site A text", 70),
		siteB.Counters[0].Device: want("Org text", 70),    // org only
		special:                  want("Org text en", 33), // device over org
	}
	checkFronts(t, base, pads, expect)

	// A change pushed through the API reaches the units that inherit it.
	// PUT replaces the level's whole override.
	apiDo(t, http.MethodPut, base+"/api/v1/fleet/config/org/"+org,
		`{"panel":{"lang":"bg","texts":{"bg":"New org text","en":"Org text en"}},"backlight":{"level":90}}`, http.StatusOK, nil)
	expect[siteB.Counters[0].Device] = want("New org text", 90)
	expect[siteA.Counters[0].Device] = want("Site A text", 90)
	expect[siteA.Counters[1].Device] = want("Site A text", 90)
	checkFronts(t, base, pads, expect)

	// Invalid overrides are refused, naming the rule; nothing changes.
	for _, tc := range []struct{ path, body, msg string }{
		{"/api/v1/fleet/config/device/" + special, `{"vote_window_s":0}`, "vote_window_s 0 outside 1..3600"},
		{"/api/v1/fleet/config/site/" + siteB.ID, `{"panel":{"lang":"fr"}}`, `panel lang "fr" has no text`},
		{"/api/v1/fleet/config/site/" + siteB.ID, `{"mode":"sometimes"}`, `mode "sometimes"`},
		{"/api/v1/fleet/config/site/" + siteB.ID, `{"backlight":{"on":"25:00"}}`, `"25:00" is not HH:MM`},
	} {
		var e struct{ Error string }
		apiDo(t, http.MethodPut, base+tc.path, tc.body, http.StatusUnprocessableEntity, &e)
		if !strings.Contains(e.Error, tc.msg) {
			t.Errorf("PUT %s %s: error %q does not say %q", tc.path, tc.body, e.Error, tc.msg)
		}
	}
	// An unknown key is a typo, not a silent no-op.
	apiDo(t, http.MethodPut, base+"/api/v1/fleet/config/org/"+org, `{"vote_windows":30}`, http.StatusBadRequest, nil)
	checkFronts(t, base, pads, expect)

	// Replacing a keypad: a new device at the same counter gets a fresh
	// secret, connects with it and runs the counter's configuration; the
	// old one, retired, loses its credentials.
	old, counter := siteA.Counters[0].Device, siteA.Counters[0].ID
	var added struct{ Device, Secret string }
	apiDo(t, http.MethodPost, base+"/api/v1/fleet/devices",
		`{"id":"kp-new","serial":"SK5-999999","counter":"`+counter+`"}`, http.StatusCreated, &added)
	if added.Secret == "" {
		t.Fatal("no secret returned")
	}
	apiDo(t, http.MethodDelete, base+"/api/v1/fleet/devices/"+old, "", http.StatusOK, nil)
	pads["kp-new"] = startUnit(t, ctx, "kp-new", added.Secret, "SK5-999999", "tcp://"+app.MQTTAddr())
	delete(expect, old)
	expect["kp-new"] = want("Site A text", 90)
	checkFronts(t, base, pads, expect)
	if p, ok := app.Fleet().Current().Placement("kp-new"); !ok || p.Counter != counter || p.Site != siteA.ID {
		t.Errorf("kp-new placed at %+v", p)
	}
	if _, ok := app.Fleet().Current().Device(old); ok {
		t.Errorf("retired %s still in the registry", old)
	}
	// Its session ends with its credentials; it cannot come back.
	testwait.For(t, "the retired unit's session revoked", func() bool {
		return strings.Contains(httpBody(t, base+"/metrics"), "semko_broker_revoked_sessions_total 1\n")
	})
	metrics := httpBody(t, base+"/metrics")
	for _, line := range []string{"semko_fleet_devices 4", "semko_fleet_config_out_of_sync 0"} {
		if !strings.Contains(metrics, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// writeFleetWithConfig writes model's fleet file with config blocks: keys
// are org or site ids, or "dev:<id>".
func writeFleetWithConfig(t *testing.T, model *fleet.Model, path string, cfg map[string]*devconfig.Override) {
	t.Helper()
	if err := model.WriteFleetFile(path, broker.HashSecret); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := registry.ParseFile(data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range f.Organisations {
		o := &f.Organisations[i]
		o.Config = cfg[o.ID]
		for j := range o.Sites {
			o.Sites[j].Config = cfg[o.Sites[j].ID]
		}
	}
	for i := range f.Devices {
		f.Devices[i].Config = cfg["dev:"+f.Devices[i].ID]
	}
	out, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// startUnits runs one real edge agent with a simulated keypad per device,
// until ctx ends or the test does.
func startUnits(t *testing.T, ctx context.Context, model *fleet.Model, brokerURL string) map[string]*keypad.Keypad {
	t.Helper()
	pads := map[string]*keypad.Keypad{}
	for _, d := range model.Devices {
		pads[d.ID] = startUnit(t, ctx, d.ID, d.Secret, d.Serial, brokerURL)
	}
	return pads
}

// startUnit runs a real edge agent for device on a simulated keypad.
func startUnit(t *testing.T, ctx context.Context, device, secret, serial, brokerURL string) *keypad.Keypad {
	t.Helper()
	kp, _ := startEdge(t, ctx, edge.Config{
		Device: device, Secret: secret, Broker: brokerURL,
		DataDir: filepath.Join(t.TempDir(), device), Logger: testLogger(t),
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: time.Second,
	}, keypad.Options{Serial: serial})
	return kp
}

// checkFronts waits until every keypad shows the expected panel text and
// backlight level, and the API reports its configuration applied.
func checkFronts(t *testing.T, base string, pads map[string]*keypad.Keypad, expect map[string]struct {
	panel string
	light int
}) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for dev, w := range expect {
		for {
			st := pads[dev].State()
			var dc fleetapi.DeviceConfig
			apiDo(t, http.MethodGet, base+"/api/v1/fleet/devices/"+dev+"/config", "", http.StatusOK, &dc)
			if st.Panel == w.panel && st.Light == w.light && dc.Status.InSync {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s shows panel %q light %d, config %+v; want panel %q light %d, in sync",
					dev, st.Panel, st.Light, dc.Status, w.panel, w.light)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestFleetFileBadAtRestart: a bad edit of the fleet file does not keep a
// backend with a fleet from starting; it runs the database's fleet, and
// the API changes made before the restart are still there.
func TestFleetFileBadAtRestart(t *testing.T) {
	model := fleet.Generate(fleet.Spec{Seed: 5, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 2})
	cfg := newTestConfig(t, model, nil)
	run := func(check func(app *backend.App)) {
		t.Helper()
		app := newApp(t, cfg, testLogger(t))
		stop := startApp(t, app)
		check(app)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	run(func(app *backend.App) {
		apiDo(t, http.MethodPost, "http://"+app.HTTPAddr()+"/api/v1/fleet/devices", `{"id":"spare-1"}`, http.StatusCreated, nil)
	})
	if err := os.WriteFile(cfg.FleetFile, []byte("organisations: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(func(app *backend.App) {
		if n := app.Fleet().Current().Len(); n != len(model.Devices)+1 {
			t.Errorf("after a bad file the fleet has %d devices, want %d", n, len(model.Devices)+1)
		}
		if err := app.ReloadRegistry(); err == nil {
			t.Error("reloading the bad file reported no error")
		}
	})
}
