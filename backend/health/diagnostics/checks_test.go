package diagnostics

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/fleet/live"
	"github.com/semko/semko/protocol"
)

var t0 = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

// TestChecks drives each check over fake live state on a fake clock: the
// state at a first run, a change after `after`, the findings at a second
// run, then (with heal) the state put right and every finding resolved.
func TestChecks(t *testing.T) {
	beatAll := func(f *fakeFleet, now time.Time) {
		for _, id := range []string{"kp-1", "kp-2", "kp-3", "kp-9"} {
			f.edit(id, func(s *live.DeviceState) { s.HeartbeatReceived = now })
		}
	}
	tests := []struct {
		name   string
		check  string
		cfg    func(*Config)
		before func(f *fakeFleet, now time.Time)
		after  time.Duration
		change func(f *fakeFleet, now time.Time)
		want   []string
		heal   func(f *fakeFleet, now time.Time)
	}{
		{name: "healthy fleet, every check", check: "", after: 31 * time.Minute,
			change: func(f *fakeFleet, now time.Time) {
				beatAll(f, now)
				for _, id := range []string{"kp-1", "kp-2", "kp-3"} {
					f.edit(id, func(s *live.DeviceState) {
						s.Health.Presses = [5]uint64{2, 3, 5, 12, 20}
						s.Activity = live.Activity{Closed: 40, Voted: 30, UnvotedStreak: 2, UnvotedSince: now.Add(-3 * time.Hour)}
					})
				}
			}},
		{name: "offline after three heartbeat intervals", check: CheckOffline, after: 4 * time.Minute,
			change: func(f *fakeFleet, now time.Time) {
				beatAll(f, now)
				f.edit("kp-1", func(s *live.DeviceState) { s.HeartbeatReceived = t0 })
			},
			want: []string{"kp-1 offline"}, heal: beatAll},
		{name: "offline timeout per model and per device", check: CheckOffline, after: 5 * time.Minute,
			cfg: func(c *Config) {
				c.Offline.PerModel = map[string]time.Duration{"SK7": 10 * time.Minute}
				c.Offline.PerDevice = map[string]time.Duration{"kp-2": 4 * time.Minute}
				c.Offline.Timeout = 6 * time.Minute
			},
			change: func(f *fakeFleet, now time.Time) {
				for _, id := range []string{"kp-1", "kp-2", "kp-3"} {
					f.edit(id, func(s *live.DeviceState) { s.HeartbeatReceived = t0 })
				}
			},
			want: []string{"kp-2 offline"}},
		{name: "never heard since start", check: CheckOffline, after: 4 * time.Minute,
			before: func(f *fakeFleet, _ time.Time) {
				f.edit("kp-2", func(s *live.DeviceState) { *s = live.DeviceState{Device: s.Device, Placement: s.Placement} })
			},
			change: func(f *fakeFleet, now time.Time) {
				for _, id := range []string{"kp-1", "kp-3"} {
					f.edit(id, func(s *live.DeviceState) { s.HeartbeatReceived = now })
				}
			},
			want: []string{"kp-2 offline"}},
		{name: "configured heartbeat interval counts", check: CheckOffline, after: 14 * time.Minute,
			change: func(f *fakeFleet, now time.Time) {
				// site-b's kp-3 beats every 5 min by config: 14 min of
				// silence is within three intervals.
				f.edit("kp-1", func(s *live.DeviceState) { s.HeartbeatReceived = now })
				f.edit("kp-2", func(s *live.DeviceState) { s.HeartbeatReceived = now })
			}},
		{name: "configured heartbeat interval runs out", check: CheckOffline, after: 16 * time.Minute,
			change: func(f *fakeFleet, now time.Time) {
				f.edit("kp-1", func(s *live.DeviceState) { s.HeartbeatReceived = now })
				f.edit("kp-2", func(s *live.DeviceState) { s.HeartbeatReceived = now })
			},
			want: []string{"kp-3 offline"}},
		{name: "stuck key rising without activations", check: CheckStuckKey, after: 30 * time.Minute,
			before: func(f *fakeFleet, _ time.Time) {
				f.edit("kp-2", func(s *live.DeviceState) { s.Activity.Closed = 5 })
			},
			change: func(f *fakeFleet, _ time.Time) {
				f.edit("kp-2", func(s *live.DeviceState) { s.Health.Presses[2] += 25 })
			},
			want: []string{"kp-2 stuck_key"},
			heal: func(f *fakeFleet, _ time.Time) {
				f.edit("kp-2", func(s *live.DeviceState) { s.Health.Presses[3]++; s.Activity.Closed++ })
			}},
		{name: "stuck key by share", check: CheckStuckKey, after: 30 * time.Minute,
			change: func(f *fakeFleet, _ time.Time) {
				f.edit("kp-1", func(s *live.DeviceState) {
					s.Health.Presses[0] += 30
					s.Health.Presses[4] += 2
					s.Activity.Closed += 20
				})
			},
			want: []string{"kp-1 stuck_key"}},
		{name: "stuck key needs a full window", check: CheckStuckKey, after: 29 * time.Minute,
			change: func(f *fakeFleet, _ time.Time) {
				f.edit("kp-1", func(s *live.DeviceState) { s.Health.Presses[0] += 300 })
			}},
		{name: "dead panel and backlight", check: CheckHardware, after: time.Minute,
			change: func(f *fakeFleet, _ time.Time) {
				f.edit("kp-1", func(s *live.DeviceState) { s.Health.PanelOK = false })
				f.edit("kp-3", func(s *live.DeviceState) { s.Health.BacklightOK = false })
			},
			want: []string{"kp-1 dead_panel", "kp-3 dead_backlight"},
			heal: func(f *fakeFleet, _ time.Time) {
				f.edit("kp-1", func(s *live.DeviceState) { s.Health.PanelOK = true })
				f.edit("kp-3", func(s *live.DeviceState) { s.Health.BacklightOK = true })
			}},
		{name: "silent unit", check: CheckSilent, after: time.Minute,
			change: func(f *fakeFleet, now time.Time) {
				f.edit("kp-3", func(s *live.DeviceState) {
					s.Activity = live.Activity{Closed: 30, Voted: 10, UnvotedStreak: 12, UnvotedSince: now.Add(-3 * time.Hour)}
				})
				// Many unvoted, but not for long: the stretch is not over.
				f.edit("kp-1", func(s *live.DeviceState) {
					s.Activity = live.Activity{Closed: 30, UnvotedStreak: 30, UnvotedSince: now.Add(-time.Hour)}
				})
			},
			want: []string{"kp-3 silent_unit"},
			heal: func(f *fakeFleet, now time.Time) {
				f.edit("kp-3", func(s *live.DeviceState) { s.Activity = live.Activity{Closed: 31, Voted: 11, LastVoted: now} })
			}},
		{name: "clock drift", check: CheckClockDrift, after: time.Minute,
			change: func(f *fakeFleet, _ time.Time) {
				f.edit("kp-2", func(s *live.DeviceState) { s.Health.ClockOffsetMS = -90_000 })
				f.edit("kp-1", func(s *live.DeviceState) { s.Health.ClockOffsetMS = 59_000 })
			},
			want: []string{"kp-2 clock_drift"}},
		{name: "edge clock", check: CheckEdgeClock, after: time.Minute,
			cfg: func(c *Config) { c.EdgeClock.HeldFor = 30 * time.Second },
			change: func(f *fakeFleet, now time.Time) {
				// kp-2 runs 6 minutes fast but stamps on the backend's time;
				// kp-1 is within the bound; kp-3's votes were held apart.
				f.edit("kp-2", func(s *live.DeviceState) {
					s.Clock = live.ClockState{Measured: true, OffsetMS: 360_000, Synced: true}
				})
				f.edit("kp-1", func(s *live.DeviceState) { s.Clock = live.ClockState{Measured: true, OffsetMS: -59_000} })
				f.edit("kp-3", func(s *live.DeviceState) {
					s.Clock = live.ClockState{Held: 2, HeldLast: now, HeldOffsetMS: 360_000}
				})
			},
			want: []string{"kp-2 edge_clock", "kp-3 edge_clock"},
			heal: func(f *fakeFleet, _ time.Time) {
				// kp-2 set right; kp-3's last held vote older than held_for.
				f.edit("kp-2", func(s *live.DeviceState) { s.Clock.OffsetMS = 150 })
			}},
		{name: "outbox backlog growing", check: CheckOutbox, after: 10 * time.Minute,
			before: func(f *fakeFleet, _ time.Time) {
				f.edit("kp-1", func(s *live.DeviceState) { s.Outbox = 12 })
				f.edit("kp-2", func(s *live.DeviceState) { s.Outbox = 40 })
			},
			change: func(f *fakeFleet, _ time.Time) {
				f.edit("kp-1", func(s *live.DeviceState) { s.Outbox = 30 })
				f.edit("kp-2", func(s *live.DeviceState) { s.Outbox = 20 }) // draining
			},
			want: []string{"kp-1 outbox_backlog"},
			heal: func(f *fakeFleet, _ time.Time) {
				// kp-2 at 20 for a whole window would be a backlog too.
				f.edit("kp-1", func(s *live.DeviceState) { s.Outbox = 0 })
				f.edit("kp-2", func(s *live.DeviceState) { s.Outbox = 3 })
			}},
		{name: "outdated firmware", check: CheckFirmware, after: time.Minute,
			cfg: func(c *Config) { c.Firmware.Target = "1.10.0" },
			change: func(f *fakeFleet, _ time.Time) {
				f.edit("kp-1", func(s *live.DeviceState) { s.FW = "1.10.0" })
				f.edit("kp-3", func(s *live.DeviceState) { s.FW = "2.0" })
			},
			want: []string{"kp-2 outdated_firmware"},
			heal: func(f *fakeFleet, _ time.Time) {
				f.edit("kp-2", func(s *live.DeviceState) { s.FW = "1.10.1" })
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := clockwork.NewFakeClockAt(t0)
			fl := newFakeFleet(t, t0)
			rec := newRecorder()
			cfg := Config{}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			d, err := New(Options{Config: cfg, Devices: fl.devices, Registry: fl.registry, Raiser: rec,
				Publisher: &pubRecorder{}, Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			checks := []string{tc.check}
			if tc.check == "" {
				checks = Checks
			}
			runAll := func() {
				t.Helper()
				for _, c := range checks {
					if err := d.CheckNow(t.Context(), c); err != nil {
						t.Fatalf("run %s: %v", c, err)
					}
				}
			}
			if tc.before != nil {
				tc.before(fl, clock.Now())
			}
			runAll()
			clock.Advance(tc.after)
			if tc.change != nil {
				tc.change(fl, clock.Now())
			}
			runAll()
			if got := rec.firing(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("firing %q, want %q", got, tc.want)
			}
			for _, f := range rec.raised {
				if f.Subject.Site == "" || f.Subject.Counter == "" || f.Hint == "" || !strings.Contains(f.Message, f.Subject.Device) {
					t.Errorf("finding lacks site, counter, hint or device: %+v", f)
				}
			}
			// Running again raises nothing new: open findings stay open.
			n := rec.raisedCount()
			runAll()
			if rec.raisedCount() != n {
				t.Fatalf("second run raised %d more", rec.raisedCount()-n)
			}
			if tc.heal == nil {
				return
			}
			clock.Advance(tc.after)
			tc.heal(fl, clock.Now())
			runAll()
			if got := rec.firing(); len(got) != 0 {
				t.Fatalf("still firing after heal: %q", got)
			}
		})
	}
}

func TestSelfTestRound(t *testing.T) {
	clock := clockwork.NewFakeClockAt(t0)
	fl := newFakeFleet(t, t0)
	fl.edit("kp-3", func(s *live.DeviceState) { s.Online = false })
	rec, pub := newRecorder(), &pubRecorder{}
	d, err := New(Options{Devices: fl.devices, Registry: fl.registry, Raiser: rec, Publisher: pub, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CheckNow(t.Context(), CheckSelfTest); err != nil {
		t.Fatal(err)
	}
	want := []string{protocol.DeviceTopic("kp-1", protocol.KindCommand), protocol.DeviceTopic("kp-2", protocol.KindCommand)}
	if got := pub.sent(); !reflect.DeepEqual(got, want) {
		t.Fatalf("sent to %q, want %q (online installed units only)", got, want)
	}
	id := "selftest-" + itoa(t0.Unix())
	fl.edit("kp-1", func(s *live.DeviceState) {
		s.Commands = []live.CommandOutcome{{ID: id, Error: "self-test failed", Detail: map[string]string{"panel": "1", "light": "0", "keys": "11111"}}}
	})
	// kp-2 does not answer; before the deadline that is no finding yet.
	clock.Advance(time.Minute)
	if err := d.CheckNow(t.Context(), CheckSelfTestResults); err != nil {
		t.Fatal(err)
	}
	if got := rec.firing(); !reflect.DeepEqual(got, []string{"kp-1 selftest_failed"}) {
		t.Fatalf("firing %q", got)
	}
	if f, _ := rec.find("kp-1", alert.KindSelfTestFailed); f.Details["light"] != "0" {
		t.Fatalf("failed finding lacks the report: %+v", f)
	}
	clock.Advance(5 * time.Minute)
	if err := d.CheckNow(t.Context(), CheckSelfTestResults); err != nil {
		t.Fatal(err)
	}
	if got := rec.firing(); !reflect.DeepEqual(got, []string{"kp-1 selftest_failed", "kp-2 selftest_missing"}) {
		t.Fatalf("firing %q", got)
	}
	// The next night both pass: every self-test finding resolves.
	clock.Advance(24 * time.Hour)
	if err := d.CheckNow(t.Context(), CheckSelfTest); err != nil {
		t.Fatal(err)
	}
	id2 := "selftest-" + itoa(clock.Now().Unix())
	for _, dev := range []string{"kp-1", "kp-2"} {
		fl.edit(dev, func(s *live.DeviceState) { s.Commands = []live.CommandOutcome{{ID: id2, OK: true}} })
	}
	if err := d.CheckNow(t.Context(), CheckSelfTestResults); err != nil {
		t.Fatal(err)
	}
	if got := rec.firing(); len(got) != 0 {
		t.Fatalf("firing after a passing round: %q", got)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.4.2", "1.4.2", 0}, {"1.4.2", "1.10.0", -1}, {"2.0", "1.99.99", 1}, {"v1.5", "1.5.0", 0},
		{"1.5.0-rc1", "1.5.0-rc2", -1}, {"1.4", "1.4.1", -1},
	}
	for _, tc := range tests {
		if got := compareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("compare(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestStaleAlertResolvedAfterRestart: the alert manager keeps an offline
// alert from before a restart; the unit is fine now, so the first run
// after the start resolves it, while a unit still offline stays open.
func TestStaleAlertResolvedAfterRestart(t *testing.T) {
	clock := clockwork.NewFakeClockAt(t0)
	fl := newFakeFleet(t, t0)
	rec := newRecorder()
	reg := fl.registry()
	for _, id := range []string{"kp-1", "kp-2"} {
		p, _ := reg.Placement(id)
		f := alert.Finding{Kind: alert.KindOffline, Subject: alert.Subject{Org: p.Org, Site: p.Site, Counter: p.Counter, Device: id}}
		rec.open[f.Key()] = f
	}
	d, err := New(Options{Devices: fl.devices, Registry: fl.registry, Raiser: rec, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(4 * time.Minute)
	for _, id := range []string{"kp-1", "kp-3"} {
		fl.edit(id, func(s *live.DeviceState) { s.HeartbeatReceived = clock.Now() })
	}
	if err := d.CheckNow(t.Context(), CheckOffline); err != nil {
		t.Fatal(err)
	}
	if got := rec.firing(); !reflect.DeepEqual(got, []string{"kp-2 offline"}) {
		t.Fatalf("firing %q, want only kp-2", got)
	}
}

func TestRoutes(t *testing.T) {
	clock := clockwork.NewFakeClockAt(t0)
	fl := newFakeFleet(t, t0)
	fl.edit("kp-1", func(s *live.DeviceState) { s.Health.PanelOK = false })
	d, err := New(Options{Devices: fl.devices, Registry: fl.registry, Raiser: newRecorder(), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, rt := range d.Routes() {
		mux.Handle(rt.Pattern, rt.Handler)
	}
	do := func(method, path string) (int, string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(method, path, nil)
		req = req.WithContext(access.WithPrincipal(req.Context(), access.Principal{Role: access.Admin, Scope: access.Everything}))
		mux.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	tests := []struct {
		method, path string
		code         int
		contains     string
	}{
		{"POST", "/api/v1/diagnostics/nonsense", http.StatusNotFound, "unknown check"},
		{"POST", "/api/v1/diagnostics/hardware", http.StatusOK, `"open":1`},
		{"GET", "/api/v1/diagnostics", http.StatusOK, `"kind":"dead_panel"`},
	}
	for _, tc := range tests {
		code, body := do(tc.method, tc.path)
		if code != tc.code || !strings.Contains(body, tc.contains) {
			t.Errorf("%s %s = %d %s, want %d with %s", tc.method, tc.path, code, body, tc.code, tc.contains)
		}
	}
}
