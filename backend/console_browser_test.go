package backend_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/alertapi"
	"github.com/semko/semko/backend/fleet/live"
	"github.com/semko/semko/backend/health/diagnostics"
	"github.com/semko/semko/edge"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/firmware-sim/keypad"
	"github.com/semko/semko/fleet/devconfig"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/testwait"
)

// The browser journeys: headless Chromium driven over the DevTools
// protocol (chromedp) against a real backend with its broker, InfluxDB and
// a simulated fleet of real edge agents.

// chromium finds the browser. Without one the journeys skip, except in CI
// (CI=true), where a missing browser is a failure: CI must run them.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SEMKO_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no Chromium found (install Debian's `chromium` package: apt-get install -y chromium; or set SEMKO_CHROMIUM)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true requires the browser tests to run")
	}
	t.Skip(msg)
	return ""
}

// newBrowser starts a headless Chromium for the test and returns a tab.
func newBrowser(t *testing.T, width, height int) context.Context {
	t.Helper()
	path := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(width, height),
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return ctx
}

// screenshot saves the viewport as a PNG test artefact: under
// $SEMKO_ARTIFACTS when set (CI keeps that directory), else in the test's
// temporary directory. With SEMKO_UPDATE_DOCS=1 it also replaces
// docs/<docName> (the pictures in the README).
func screenshot(t *testing.T, ctx context.Context, name, docName string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := os.Getenv("SEMKO_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	if docName != "" && os.Getenv("SEMKO_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(filepath.Join("..", "docs", docName), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// signIn fills the sign-in form as a person would.
func signIn(t *testing.T, ctx context.Context, base, name, password string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/signin"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="name"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), name),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.Click(chromedp.CSS(`#signin`)),
		chromedp.WaitVisible(chromedp.CSS(`form.signout`)),
	); err != nil {
		t.Fatalf("sign in as %s: %v", name, err)
	}
}

// journeyBackend is the backend of the journeys: InfluxDB, two
// organisations, the hardware check every 200 ms, and the simulated fleet
// running with a dead backlight on devIn's keypad.
func journeyBackend(t *testing.T) *consoleFixture {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: starts InfluxDB and Chromium")
	}
	db := influxlocal.StartForTest(t)
	f := newConsoleFixture(t, func(cfg *backend.Config, model *fleet.Model) {
		// Heartbeats every second, through the organisations' config:
		// the hardware check reads them.
		one := 1
		overrides := map[string]*devconfig.Override{}
		for _, o := range model.Orgs {
			overrides[o.ID] = &devconfig.Override{HeartbeatS: &one}
		}
		writeFleetWithConfig(t, model, cfg.FleetFile, overrides)
		cfg.Influx.URL = db.URL()
		cfg.Influx.FlushInterval = 50 * time.Millisecond
		cfg.Rollup.Disabled = true
		cfg.Console.GrafanaURL = "http://grafana.example"
		cfg.Diagnostics.Schedule = map[string]string{}
		for _, c := range diagnostics.Checks {
			cfg.Diagnostics.Schedule[c] = "off"
		}
		cfg.Diagnostics.Schedule[diagnostics.CheckHardware] = "200ms"
	})
	model := f.model
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		fleet.Run(ctx, model, fleet.Options{
			Broker: "tcp://" + f.app.MQTTAddr(), DataDir: t.TempDir(),
			ServiceInterval: 500 * time.Millisecond, Window: time.Second, Participation: 1,
			DrainTimeout: time.Second, Logger: testLogger(t),
			NewKeypadOptions: func(d fleet.Device) keypad.Options {
				return keypad.Options{DeadBacklight: d.ID == f.devIn}
			},
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

// TestJourneys runs the three journeys against one backend.
func TestJourneys(t *testing.T) {
	chromium(t) // skip (or fail in CI) before starting anything
	f := journeyBackend(t)

	// The fault injected through the simulator (a dead backlight) becomes
	// an alert.
	var faultID int64
	testwait.For(t, "dead backlight alert of "+f.devIn, func() bool {
		list, err := f.app.Alerts().List(context.Background(), alert.Filter{State: "open", Device: f.devIn, Kind: alert.KindDeadBacklight})
		if err == nil && len(list) == 1 {
			faultID = list[0].ID
			return true
		}
		return false
	})

	t.Run("technician on a phone acknowledges the fault", func(t *testing.T) {
		ctx := newBrowser(t, 390, 844)
		signIn(t, ctx, f.base, f.accountsOf[access.Technician], f.passwords[access.Technician])
		row := chromedp.CSS(fmt.Sprintf(`#home-alert-list tr[data-id="%d"] a`, faultID))
		if err := chromedp.Do(ctx, chromedp.WaitVisible(row)); err != nil {
			t.Fatalf("the fault's alert is not on the technician's home page: %v", err)
		}
		screenshot(t, ctx, "technician-home-phone.png", "console-phone.png")
		// The list updates by itself: a new fault appears without a reload
		// (the page's script polls every 4 s; allow 8 s on a busy machine).
		subject := alert.Subject{Org: f.orgIn, Site: f.model.Orgs[0].Sites[0].ID, Device: f.devIn}
		if err := f.app.Alerts().Raise(context.Background(), alert.Finding{Kind: alert.KindClockDrift, Severity: alert.SeverityWarning,
			Subject: subject, Message: "clock drift of " + f.devIn, Time: time.Now()}); err != nil {
			t.Fatal(err)
		}
		fresh, _ := f.app.Alerts().List(context.Background(), alert.Filter{State: "open", Device: f.devIn, Kind: alert.KindClockDrift})
		if len(fresh) != 1 {
			t.Fatalf("raised clock drift: %+v", fresh)
		}
		wctx, cancel := context.WithTimeout(ctx, 8*time.Second)
		err := chromedp.Do(wctx, chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#home-alert-list tr[data-id="%d"]`, fresh[0].ID))))
		cancel()
		if err != nil {
			t.Fatalf("a new alert did not appear on the open page within 8 s: %v", err)
		}
		if err := chromedp.Do(ctx,
			chromedp.Click(row),
			chromedp.WaitVisible(chromedp.CSS(`#ack`)),
			chromedp.SendKeys(chromedp.CSS(`form[action$="/ack"] textarea`), "on my way <script>alert(1)</script>"),
			chromedp.Click(chromedp.CSS(`#ack`)),
			chromedp.WaitVisible(chromedp.CSS(`.flash`)),
		); err != nil {
			t.Fatalf("acknowledge: %v", err)
		}
		state, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#alert-state`)))
		if err != nil || state != "acknowledged" {
			t.Fatalf("alert page state %q %v", state, err)
		}
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS(`main`)))
		if strings.Contains(html, "<script>alert(1)") || !strings.Contains(html, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Fatal("the comment's script tag is not shown escaped")
		}
		screenshot(t, ctx, "technician-acknowledged-phone.png", "")
		// The API agrees.
		var got alertapi.AlertAnswer
		apiDo(t, "GET", f.base+"/api/v1/alerts/"+strconv.FormatInt(faultID, 10), "", 200, &got)
		if got.Alert.State != alert.StateAcknowledged || got.Alert.AckedBy != f.accountsOf[access.Technician] ||
			got.Alert.AckComment != "on my way <script>alert(1)</script>" {
			t.Fatalf("API: state %s by %q comment %q", got.Alert.State, got.Alert.AckedBy, got.Alert.AckComment)
		}
	})

	t.Run("manager cannot reach another organisation's device", func(t *testing.T) {
		ctx := newBrowser(t, 1280, 900)
		signIn(t, ctx, f.base, f.accountsOf[access.Manager], f.passwords[access.Manager])
		// Home: today's figures of the organisation (the fleet votes
		// meanwhile) and the Grafana dashboard with its organisation set.
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#figure-share`))); err != nil {
			t.Fatal(err)
		}
		link, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`#home-figures a`), "href"))
		if err != nil || link.Value != "http://grafana.example/d/semko-satisfaction?var-org="+f.orgIn {
			t.Fatalf("Grafana link %q %v", link.Value, err)
		}
		testwait.For(t, "today's satisfied share on the manager's home", func() bool {
			_ = chromedp.Do(ctx, chromedp.Reload())
			share, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#figure-share`)))
			return err == nil && strings.HasSuffix(share, "%")
		})
		screenshot(t, ctx, "manager-home-desktop.png", "")
		if err := chromedp.Do(ctx, chromedp.Navigate(f.base+"/devices/"+f.devIn), chromedp.WaitVisible(chromedp.CSS(`#device-live`))); err != nil {
			t.Fatalf("own device: %v", err)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(f.base+"/devices"), chromedp.WaitVisible(chromedp.CSS(`#device-list`))); err != nil {
			t.Fatal(err)
		}
		list, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#device-list`)))
		if !strings.Contains(list, f.devIn) || strings.Contains(list, f.devOut) {
			t.Fatalf("device list not scoped: %q", list)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(f.base+"/alerts?state=")); err != nil {
			t.Fatal(err)
		}
		screenshot(t, ctx, "manager-alerts-desktop.png", "console-desktop.png")
		// Another organisation's device by URL, from this signed-in
		// browser: 404, and the answer names nothing of it. (Asked with the
		// page's fetch: chromedp v0.23 waits for a load event after a 404
		// document that Chromium does not send it.)
		status, err := chromedp.Run(ctx, chromedp.Evaluate[int](
			`fetch("/devices/`+f.devOut+`", {credentials: "same-origin"}).then(r => r.status)`, chromedp.EvalAwaitPromise))
		if err != nil || status != 404 {
			t.Fatalf("another organisation's device: %d %v, want 404", status, err)
		}
		body, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`fetch("/devices/`+f.devOut+`", {credentials: "same-origin"}).then(r => r.text())`, chromedp.EvalAwaitPromise))
		if err != nil || strings.Contains(body, f.devOut) || strings.Contains(body, f.orgOut) {
			t.Fatalf("the 404 page names the other organisation's device (%v): %q", err, body)
		}
		// The same for its alert.
		status, err = chromedp.Run(ctx, chromedp.Evaluate[int](
			`fetch("/alerts/`+strconv.FormatInt(f.alertOut, 10)+`", {credentials: "same-origin"}).then(r => r.status)`, chromedp.EvalAwaitPromise))
		if err != nil || status != 404 {
			t.Fatalf("another organisation's alert: %d %v, want 404", status, err)
		}
	})

	t.Run("admin adds a device and a real edge logs in with the secret shown", func(t *testing.T) {
		ctx := newBrowser(t, 1280, 900)
		signIn(t, ctx, f.base, f.accountsOf[access.Admin], f.passwords[access.Admin])
		const newID = "kp-9001"
		if err := chromedp.Do(ctx,
			chromedp.Navigate(f.base+"/fleet/add"),
			chromedp.WaitVisible(chromedp.CSS(`#device-id`)),
			chromedp.SendKeys(chromedp.CSS(`#device-id`), newID),
			chromedp.SendKeys(chromedp.CSS(`input[name="model"]`), "<b>SK-5</b>"),
			chromedp.Click(chromedp.CSS(`#add-device`)),
			chromedp.WaitVisible(chromedp.CSS(`#device-secret`)),
		); err != nil {
			t.Fatalf("add device: %v", err)
		}
		secret, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#device-secret`)))
		if err != nil || len(secret) < 16 {
			t.Fatalf("secret %q %v", secret, err)
		}
		screenshot(t, ctx, "admin-device-added-desktop.png", "")
		ectx, cancel := context.WithCancel(context.Background())
		defer cancel()
		startEdge(t, ectx, edge.Config{
			Device: newID, Secret: secret, Broker: "tcp://" + f.app.MQTTAddr(),
			DataDir: filepath.Join(t.TempDir(), newID), Logger: testLogger(t),
			ReconnectMin: 50 * time.Millisecond, ReconnectMax: time.Second,
		}, keypad.Options{Serial: "SN-9001"})
		testwait.For(t, newID+" online", func() bool {
			var devs []live.DeviceState
			apiDo(t, "GET", f.base+"/api/v1/devices", "", 200, &devs)
			for _, d := range devs {
				if d.Device == newID && d.Online {
					return true
				}
			}
			return false
		})
		// Its page shows it live, with the model escaped.
		if err := chromedp.Do(ctx, chromedp.Navigate(f.base+"/devices/"+newID), chromedp.WaitVisible(chromedp.CSS(`#device-live .online`))); err != nil {
			t.Fatalf("device page does not show %s online: %v", newID, err)
		}
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS(`main`)))
		if strings.Contains(html, "<b>SK-5</b>") || !strings.Contains(html, "&lt;b&gt;SK-5&lt;/b&gt;") {
			t.Fatal("model not escaped on the device page")
		}
	})
}
