package diagnostics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/fleet/timebeacon"
	"github.com/semko/semko/backend/intake/ingest"
	"github.com/semko/semko/backend/intake/spool"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/firmware-sim/keypad"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/internal/testwait"
	"github.com/semko/semko/protocol"
)

// simBackend is the part of the backend the checks need, built from real
// pieces: the embedded broker over TCP, ingest with its live state, a
// spool on disk, the registry from a fleet file.
type simBackend struct {
	model  *fleet.Model
	reg    *registry.Store
	in     *ingest.Ingest
	broker *broker.Broker
	addr   string
}

// refuseVotesOf makes the intake fail transiently for one device's votes,
// so the broker withholds their PUBACKs and its edge's outbox grows, the
// way a backend that cannot store them would behave.
func startSimBackend(t *testing.T, model *fleet.Model, refuseVotesOf string) *simBackend {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "fleet.yaml")
	if err := model.WriteFleetFile(path, broker.HashSecret); err != nil {
		t.Fatal(err)
	}
	store, err := registry.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{MaxBytes: 1 << 28})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	in, err := ingest.New(ingest.Options{Registry: store.Current, Spool: sp})
	if err != nil {
		t.Fatal(err)
	}
	var creds []broker.Credential
	for _, c := range store.Current().Credentials() {
		creds = append(creds, broker.Credential{Username: c.Device, Hash: c.Hash, Role: broker.RoleDevice})
	}
	cr, err := broker.NewCredentials(creds)
	if err != nil {
		t.Fatal(err)
	}
	refused := errors.New("test: votes of this unit are not stored")
	b, err := broker.New(broker.Options{
		TCPAddr: "127.0.0.1:0", Credentials: cr, PublishRate: -1,
		Intake: broker.IntakeFunc(func(ctx context.Context, m broker.Message) error {
			if m.Topic.Device == refuseVotesOf && m.Topic.Kind == protocol.KindVote {
				return refused
			}
			return in.Accept(ctx, m.Topic, m.Payload, m.Received)
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	// The edges' time reference, as the backend publishes it.
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); timebeacon.Run(ctx, b, 100*time.Millisecond, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() { stop(); <-done })
	return &simBackend{model: model, reg: store, in: in, broker: b, addr: b.Addr()}
}

// configure publishes a retained config with one-second heartbeats to
// every unit, as the backend's remote configuration does.
func (s *simBackend) configure(t *testing.T, window time.Duration) {
	t.Helper()
	for _, d := range s.model.Devices {
		cfg := protocol.Config{V: protocol.Version, Version: "diag-test", Mode: protocol.ModeAfterService,
			VoteWindowS: int(window / time.Second), HeartbeatS: 1, Backlight: protocol.Backlight{Level: 80}}
		payload, err := protocol.Encode(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.broker.Publish(protocol.DeviceTopic(d.ID, protocol.KindConfig), payload, true, 1); err != nil {
			t.Fatal(err)
		}
	}
}

// subset is model with only the units for which keep is true.
func subset(m *fleet.Model, keep func(id string) bool) *fleet.Model {
	cp := *m
	cp.Devices = nil
	for _, d := range m.Devices {
		if keep(d.ID) {
			cp.Devices = append(cp.Devices, d)
		}
	}
	return &cp
}

// mute connects as a unit that announces itself but never runs commands
// nor sends heartbeats: an edge hung after its birth.
func mute(t *testing.T, addr string, dev fleet.Device) {
	t.Helper()
	birth, err := protocol.Encode(protocol.Status{V: protocol.Version, Device: dev.ID, Time: time.Now(), Online: true, BootID: "b-mute", BDSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(dev.ID).
		SetUsername(dev.ID).SetPassword(dev.Secret).SetAutoReconnect(false)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mute unit connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	if tok := c.Publish(protocol.DeviceTopic(dev.ID, protocol.KindStatus), 1, true, birth); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mute unit birth: %v", tok.Error())
	}
}

// TestFaultsThroughSimulator runs a simulated fleet on real edge agents
// against the real broker and ingest, with one fault injected per unit
// through the keypad simulator (or, for the outbox and the unanswered
// self-test, through the unit's link), and checks that each diagnostic
// finds exactly its unit, and that the healthy units raise nothing.
func TestFaultsThroughSimulator(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a simulated fleet")
	}
	model := fleet.Generate(fleet.Spec{Seed: 4, Orgs: 1, SitesPerOrg: 2, CountersPerSite: 6})
	if len(model.Devices) < 11 {
		t.Fatalf("fleet has %d units", len(model.Devices))
	}
	id := func(n int) string { return model.Devices[n].ID }
	var (
		healthy  = []string{id(0), id(7), id(11)}
		stuck    = id(1)
		light    = id(2)
		panel    = id(3)
		drift    = id(4)
		silent   = id(5)
		oldFW    = id(6)
		gone     = id(8)  // its edge stops early
		backlog  = id(9)  // its votes are refused
		noAnswer = id(10) // answers nothing
	)
	faults := map[string]keypad.Options{
		stuck:  {StuckKey: 5, StuckEvery: 50 * time.Millisecond},
		light:  {DeadBacklight: true},
		panel:  {DeadPanel: true},
		drift:  {ClockOffset: 3 * time.Minute},
		silent: {SilentKeys: true},
		oldFW:  {FW: "1.2.0"},
	}
	want := map[string][]alert.Kind{
		stuck:    {alert.KindSelfTestFailed, alert.KindStuckKey},
		light:    {alert.KindDeadBacklight, alert.KindSelfTestFailed},
		panel:    {alert.KindDeadPanel, alert.KindSelfTestFailed},
		drift:    {alert.KindClockDrift},
		silent:   {alert.KindSelfTestFailed, alert.KindSilentUnit},
		oldFW:    {alert.KindOutdatedFirmware},
		gone:     {alert.KindOffline},
		backlog:  {alert.KindOutboxBacklog},
		noAnswer: {alert.KindOffline, alert.KindSelfTestMissing},
	}
	window := time.Second
	sb := startSimBackend(t, model, backlog)
	sb.configure(t, window)
	mute(t, sb.addr, model.Devices[10])

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	run := func(m *fleet.Model, maxAct int) {
		wg.Go(func() {
			_, err := fleet.Run(ctx, m, fleet.Options{
				Broker: "tcp://" + sb.addr, DataDir: t.TempDir(),
				ServiceInterval: 300 * time.Millisecond, Window: window, Participation: 0.95,
				MaxActivations: maxAct, DrainTimeout: time.Second,
				NewKeypadOptions: func(dev fleet.Device) keypad.Options { return faults[dev.ID] },
				Logger:           slog.New(slog.DiscardHandler),
			})
			if err != nil && ctx.Err() == nil && maxAct == 0 {
				t.Errorf("fleet: %v", err)
			}
		})
	}
	run(subset(model, func(d string) bool { return d != gone && d != noAnswer }), 0)
	run(subset(model, func(d string) bool { return d == gone }), 3)

	// Start the checks once the fleet beats, as a backend would be running
	// before its fleet.
	testwait.Within(t, 30*time.Second, "every running unit sends heartbeats", func() bool {
		for _, st := range sb.in.Devices() {
			if st.Device != gone && st.Device != noAnswer && st.HeartbeatEvery == 0 {
				return false
			}
		}
		return true
	})
	rec := newRecorder()
	d, err := New(Options{
		Config: Config{
			Offline:    OfflineConfig{DefaultHeartbeat: time.Second},
			StuckKey:   StuckKeyConfig{Window: 3 * time.Second, MinPresses: 20},
			Silent:     SilentConfig{MinActivations: 6, Stretch: time.Second},
			ClockDrift: ClockDriftConfig{Max: time.Minute},
			Outbox:     OutboxConfig{Window: 2 * time.Second, Min: 5},
			Firmware:   FirmwareConfig{Target: "1.4.0"},
			SelfTest:   SelfTestConfig{Deadline: 3 * time.Second},
		},
		Devices: sb.in.Devices, Registry: sb.reg.Current, Raiser: rec, Publisher: sb.broker,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CheckNow(t.Context(), CheckSelfTest); err != nil {
		t.Fatal(err)
	}
	byDevice := func() map[string][]alert.Kind {
		out := map[string][]alert.Kind{}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, f := range rec.open {
			out[f.Subject.Device] = append(out[f.Subject.Device], f.Kind)
		}
		for _, ks := range out {
			sort.Slice(ks, func(i, j int) bool { return ks[i] < ks[j] })
		}
		return out
	}
	testwait.Within(t, 45*time.Second, "every fault found", func() bool {
		for _, c := range Checks {
			if c == CheckSelfTest {
				continue
			}
			if err := d.CheckNow(t.Context(), c); err != nil {
				t.Fatalf("run %s: %v", c, err)
			}
		}
		return reflect.DeepEqual(byDevice(), want)
	}, func() string { return fmt.Sprintf("open %v\nwant %v", byDevice(), want) })

	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, f := range rec.raised {
		for _, h := range healthy {
			if f.Subject.Device == h {
				t.Errorf("healthy unit %s raised %s: %s", h, f.Kind, f.Message)
			}
		}
		if _, ok := want[f.Subject.Device]; ok && !has(want[f.Subject.Device], f.Kind) {
			t.Errorf("unit %s raised %s besides its fault: %s", f.Subject.Device, f.Kind, f.Message)
		}
		t.Logf("%s %s: %s | %s", f.Kind, f.Subject.Device, f.Message, f.Hint)
	}
	if f, ok := rec.open[alert.Finding{Kind: alert.KindStuckKey, Subject: subjectOf(sb, stuck)}.Key()]; !ok || f.Details["key"] != "5" {
		t.Errorf("stuck key finding names key %q, want 5", f.Details["key"])
	}
}

func subjectOf(sb *simBackend, device string) alert.Subject {
	p, _ := sb.reg.Current().Placement(device)
	return alert.Subject{Org: p.Org, Site: p.Site, Counter: p.Counter, Device: device}
}

// TestHealthyFleetRaisesNothing runs every check, the self-test included,
// over a healthy simulated fleet for longer than each check's window and
// the self-test deadline, and expects no finding at all.
func TestHealthyFleetRaisesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a simulated fleet")
	}
	model := fleet.Generate(fleet.Spec{Seed: 5, Orgs: 1, SitesPerOrg: 2, CountersPerSite: 3})
	window := time.Second
	sb := startSimBackend(t, model, "")
	sb.configure(t, window)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		fleet.Run(ctx, model, fleet.Options{
			Broker: "tcp://" + sb.addr, DataDir: t.TempDir(),
			ServiceInterval: 300 * time.Millisecond, Window: window, Participation: 0.95, StrayPresses: 0.05,
			DrainTimeout: time.Second, Logger: slog.New(slog.DiscardHandler),
		})
	})
	testwait.Within(t, 30*time.Second, "every unit sends heartbeats", func() bool {
		for _, st := range sb.in.Devices() {
			if st.HeartbeatEvery == 0 {
				return false
			}
		}
		return true
	})
	rec := newRecorder()
	d, err := New(Options{
		Config: Config{
			Offline:    OfflineConfig{DefaultHeartbeat: time.Second},
			StuckKey:   StuckKeyConfig{Window: 2 * time.Second, MinPresses: 20},
			Silent:     SilentConfig{MinActivations: 6, Stretch: time.Second},
			ClockDrift: ClockDriftConfig{Max: time.Minute},
			Outbox:     OutboxConfig{Window: time.Second, Min: 5},
			Firmware:   FirmwareConfig{Target: "1.4.0"},
			SelfTest:   SelfTestConfig{Deadline: 2 * time.Second},
		},
		Devices: sb.in.Devices, Registry: sb.reg.Current, Raiser: rec, Publisher: sb.broker,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CheckNow(t.Context(), CheckSelfTest); err != nil {
		t.Fatal(err)
	}
	// Long enough for two stuck-key windows and the self-test deadline;
	// every unit must have answered its self-test by then.
	end := time.Now().Add(5 * time.Second)
	testwait.Within(t, 30*time.Second, "checks ran past their windows", func() bool {
		for _, c := range Checks {
			if c != CheckSelfTest {
				if err := d.CheckNow(t.Context(), c); err != nil {
					t.Fatalf("run %s: %v", c, err)
				}
			}
		}
		return time.Now().After(end)
	})
	for _, st := range sb.in.Devices() {
		if len(st.Commands) == 0 || !st.Commands[len(st.Commands)-1].OK {
			t.Errorf("%s: self-test results %+v", st.Device, st.Commands)
		}
	}
	if n := rec.raisedCount(); n != 0 {
		rec.mu.Lock()
		for _, f := range rec.raised {
			t.Errorf("raised on a healthy fleet: %s %s: %s", f.Kind, f.Subject.Device, f.Message)
		}
		rec.mu.Unlock()
	}
}
