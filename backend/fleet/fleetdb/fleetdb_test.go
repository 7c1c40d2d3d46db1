package fleetdb_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/semko/semko/backend/fleet/fleetdb"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/fleet/devconfig"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/internal/pglocal"
)

const hash = "sha256$00$0000000000000000000000000000000000000000000000000000000000000000"

const fleetYAML = `
organisations:
  - id: acme
    timezone: Europe/Sofia
    config:
      panel: {lang: bg, texts: {bg: "Оценете ни", en: "Rate us"}}
    sites:
      - id: centre
        counters:
          - {id: c1, device: kp-1, operator: ana, service: tax}
          - {id: c2, device: kp-2}
          - {id: c3}
devices:
  - {id: kp-1, secret_hash: "` + hash + `", installed: 2026-01-15}
  - {id: kp-2, secret_hash: "` + hash + `"}
operators:
  - {id: ana, org: acme}
services:
  - {id: tax}
`

// engine is where a test's fleet lives: every test runs on SQLite (one
// machine) and on PostgreSQL (the replicas' shared fleet).
type engine struct {
	name string
	// target returns the Path or the DSN of a fresh database.
	target func(t *testing.T) (path, dsn string)
}

var engines = []engine{
	{"sqlite", func(t *testing.T) (string, string) { return filepath.Join(t.TempDir(), "fleet.db"), "" }},
	{"postgres", func(t *testing.T) (string, string) { return "", pglocal.SharedDB(t) }},
}

// onEngines runs test once per engine, as subtests.
func onEngines(t *testing.T, test func(t *testing.T, e engine)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { test(t, e) })
	}
}

func TestMain(m *testing.M) { pglocal.Main(m) }

type harness struct {
	t     *testing.T
	path  string
	dsn   string
	file  string
	db    *fleetdb.DB
	now   time.Time
	mu    sync.Mutex
	snaps []*registry.Registry
}

func newHarness(t *testing.T, e engine, file string) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, file: filepath.Join(dir, "fleet.yaml"),
		now: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	h.path, h.dsn = e.target(t)
	h.writeFile(file)
	h.open()
	return h
}

func (h *harness) writeFile(s string) {
	if err := os.WriteFile(h.file, []byte(s), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) open() {
	h.t.Helper()
	db, err := fleetdb.Open(context.Background(), fleetdb.Options{
		Path: h.path, DSN: h.dsn, HashSecret: broker.HashSecret, Now: func() time.Time { return h.now },
		OnChange: func(r *registry.Registry) { h.mu.Lock(); h.snaps = append(h.snaps, r); h.mu.Unlock() },
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.db = db
	h.t.Cleanup(func() { db.Close() })
	if _, err := db.ApplyFile(context.Background(), h.file, false); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) reopen() {
	h.t.Helper()
	if err := h.db.Close(); err != nil {
		h.t.Fatal(err)
	}
	h.open()
}

func (h *harness) counterOf(dev string) string {
	p, ok := h.db.Current().Placement(dev)
	if !ok {
		return "<unknown>"
	}
	return p.Counter
}

func TestDeviceLifecycle(t *testing.T) { onEngines(t, testDeviceLifecycle) }

func testDeviceLifecycle(t *testing.T, e engine) {
	ctx := context.Background()
	h := newHarness(t, e, fleetYAML)
	if got := h.counterOf("kp-1"); got != "c1" {
		t.Fatalf("kp-1 at %q, want c1", got)
	}

	// Add: the secret is returned once and authenticates against the hash.
	secret, err := h.db.AddDevice(ctx, fleetdb.NewDevice{ID: "kp-3", Counter: "c3", Model: "SK5"})
	if err != nil {
		t.Fatal(err)
	}
	var stored string
	for _, c := range h.db.Current().Credentials() {
		if c.Device == "kp-3" {
			stored = c.Hash
		}
	}
	if !broker.VerifySecret(stored, secret) {
		t.Fatal("new secret does not verify against the stored hash")
	}
	if strings.Contains(stored, secret) {
		t.Fatal("secret stored in clear")
	}
	d, err := h.db.Device(ctx, "kp-3")
	if err != nil || d.Installed != "2026-11-24" || d.Placement.Counter != "c3" || d.Placement.Org != "acme" {
		t.Fatalf("kp-3 = %+v, %v", d, err)
	}

	steps := []struct {
		name    string
		do      func() error
		wantErr error
		check   map[string]string // device -> counter ("<unknown>" when not in the snapshot)
	}{
		{"add twice", func() error { _, err := h.db.AddDevice(ctx, fleetdb.NewDevice{ID: "kp-3"}); return err }, fleetdb.ErrExists, nil},
		{"add bad id", func() error { _, err := h.db.AddDevice(ctx, fleetdb.NewDevice{ID: "kp 4"}); return err }, fleetdb.ErrInvalid, nil},
		{"add at unknown counter", func() error {
			_, err := h.db.AddDevice(ctx, fleetdb.NewDevice{ID: "kp-4", Counter: "nope"})
			return err
		}, fleetdb.ErrNotFound,
			map[string]string{"kp-4": "<unknown>"}},
		{"move", func() error { c := "c3"; return h.db.UpdateDevice(ctx, "kp-1", fleetdb.DevicePatch{Counter: &c}) }, nil,
			map[string]string{"kp-1": "c3", "kp-3": "", "kp-2": "c2"}},
		{"replace at c2 via counter", func() error { d := "kp-3"; return h.db.PutCounter(ctx, "c2", fleetdb.CounterPatch{Device: &d}) }, nil,
			map[string]string{"kp-3": "c2", "kp-2": ""}},
		{"retire", func() error { return h.db.RetireDevice(ctx, "kp-2") }, nil, map[string]string{"kp-2": "<unknown>"}},
		{"move retired", func() error { c := "c1"; return h.db.UpdateDevice(ctx, "kp-2", fleetdb.DevicePatch{Counter: &c}) }, fleetdb.ErrInvalid, nil},
		{"operator of another org", func() error {
			if err := h.db.PutOperator(ctx, "bob", "Bob", "acme"); err != nil {
				return err
			}
			op := "ghost"
			return h.db.PutCounter(ctx, "c1", fleetdb.CounterPatch{Operator: &op})
		}, fleetdb.ErrInvalid, nil},
		{"assign operator and service", func() error {
			op, svc := "bob", "tax"
			return h.db.PutCounter(ctx, "c3", fleetdb.CounterPatch{Operator: &op, Service: &svc})
		}, nil, map[string]string{"kp-1": "c3"}},
		{"unknown device", func() error { return h.db.RetireDevice(ctx, "kp-9") }, fleetdb.ErrNotFound, nil},
	}
	for _, st := range steps {
		err := st.do()
		if !errors.Is(err, st.wantErr) || (st.wantErr == nil && err != nil) {
			t.Fatalf("%s: err %v, want %v", st.name, err, st.wantErr)
		}
		for dev, want := range st.check {
			if got := h.counterOf(dev); got != want {
				t.Errorf("%s: %s at %q, want %q", st.name, dev, got, want)
			}
		}
	}
	// kp-2 had no installation date in the file; kp-3 was placed at c2
	// today without one: it got today's.
	if d, _ := h.db.Device(ctx, "kp-3"); d.Installed != "2026-11-24" {
		t.Errorf("kp-3 installed %q, want the day it was placed", d.Installed)
	}
	if p, _ := h.db.Current().Placement("kp-1"); p.Operator != "bob" || p.Service != "tax" {
		t.Errorf("c3 placement %+v, want operator bob, service tax", p)
	}
	hist, err := h.db.History(ctx, "kp-2", 10)
	if err != nil || len(hist) != 2 || hist[0].Action != "replaced" || hist[1].Action != "retire" {
		t.Errorf("kp-2 history %+v, %v", hist, err)
	}

	// API changes survive a restart with the same file.
	h.reopen()
	if got := h.counterOf("kp-1"); got != "c3" {
		t.Errorf("after reopen kp-1 at %q, want c3 (API move kept)", got)
	}
	if _, ok := h.db.Current().Device("kp-2"); ok {
		t.Error("after reopen retired kp-2 is back")
	}
}

func TestFileDeclarations(t *testing.T) { onEngines(t, testFileDeclarations) }

func testFileDeclarations(t *testing.T, e engine) {
	ctx := context.Background()
	h := newHarness(t, e, fleetYAML)
	if _, err := h.db.AddDevice(ctx, fleetdb.NewDevice{ID: "api-1"}); err != nil {
		t.Fatal(err)
	}
	c := "c3"
	if err := h.db.UpdateDevice(ctx, "kp-1", fleetdb.DevicePatch{Counter: &c}); err != nil {
		t.Fatal(err)
	}
	// Same file again: not applied, the move stays.
	if applied, err := h.db.ApplyFile(ctx, h.file, false); err != nil || applied {
		t.Fatalf("unchanged file applied=%v err=%v", applied, err)
	}
	// A changed file: its declarations win, kp-2 (left out) is retired,
	// api-1 (never in a file) stays.
	h.writeFile(strings.Replace(strings.Replace(fleetYAML, "{id: c2, device: kp-2}", "{id: c2}", 1),
		"  - {id: kp-2, secret_hash: \""+hash+"\"}\n", "", 1))
	if applied, err := h.db.ApplyFile(ctx, h.file, false); err != nil || !applied {
		t.Fatalf("changed file applied=%v err=%v", applied, err)
	}
	for dev, want := range map[string]string{"kp-1": "c1", "kp-2": "<unknown>", "api-1": ""} {
		if got := h.counterOf(dev); got != want {
			t.Errorf("%s at %q, want %q", dev, got, want)
		}
	}
	// An invalid file changes nothing.
	h.writeFile(fleetYAML + "\nbogus: 1\n")
	if _, err := h.db.ApplyFile(ctx, h.file, false); !errors.Is(err, registry.ErrInvalidFleet) {
		t.Fatalf("invalid file: %v", err)
	}
	if h.counterOf("kp-1") != "c1" {
		t.Error("invalid file changed the fleet")
	}

	// Export round-trips through the file parser.
	f, err := h.db.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := registry.ParseFile(b)
	if err != nil {
		t.Fatalf("export does not parse: %v\n%s", err, b)
	}
	if len(back.Devices) != 2 || back.Organisations[0].Config == nil || back.Devices[1].Installed.IsZero() {
		t.Errorf("export lost data:\n%s", b)
	}
}

func TestOverrides(t *testing.T) { onEngines(t, testOverrides) }

func testOverrides(t *testing.T, e engine) {
	ctx := context.Background()
	h := newHarness(t, e, fleetYAML)
	org, err := h.db.Override(ctx, fleetdb.LevelOrg, "acme")
	if err != nil || org == nil || *org.Panel.Lang != "bg" {
		t.Fatalf("org override %+v, %v", org, err)
	}
	n := len(h.snaps)
	w := 45
	cases := []struct {
		name    string
		level   fleetdb.Level
		id      string
		o       *devconfig.Override
		wantErr error
	}{
		{"device window", fleetdb.LevelDevice, "kp-1", &devconfig.Override{VoteWindowS: &w}, nil},
		{"bad window", fleetdb.LevelDevice, "kp-1", &devconfig.Override{VoteWindowS: new(int)}, devconfig.ErrInvalidOverride},
		{"unknown site", fleetdb.LevelSite, "nope", &devconfig.Override{VoteWindowS: &w}, fleetdb.ErrNotFound},
		{"bad level", fleetdb.Level("planet"), "x", nil, fleetdb.ErrInvalid},
		// fr is fine alone over the defaults? No: lang fr has no text anywhere.
		{"lang without text", fleetdb.LevelSite, "centre", &devconfig.Override{Panel: &devconfig.PanelOverride{Lang: ptr("fr")}}, devconfig.ErrInvalidOverride},
		// Valid on its own, but removes the text the org's lang needs.
		{"breaks inheritance", fleetdb.LevelSite, "centre", &devconfig.Override{Panel: &devconfig.PanelOverride{Texts: map[string]string{"bg": ""}}}, fleetdb.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := h.db.SetOverride(ctx, tc.level, tc.id, tc.o)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
		})
	}
	if len(h.snaps) != n+1 {
		t.Errorf("%d snapshots published, want 1 (refused changes publish none)", len(h.snaps)-n)
	}
	c, err := h.db.Current().Config("kp-1")
	if err != nil || c.VoteWindowS != 45 || c.Panel.Lang != "bg" {
		t.Errorf("kp-1 config %+v, %v", c, err)
	}
	if c2, _ := h.db.Current().Config("kp-2"); c2.VoteWindowS != 20 || c2.Version == c.Version {
		t.Errorf("kp-2 config %+v: device override leaked", c2)
	}
}

func ptr[T any](v T) *T { return &v }

// TestConcurrentChanges runs API-like changes from several goroutines:
// each commits once, in order, and the last snapshot holds them all.
func TestConcurrentChanges(t *testing.T) { onEngines(t, testConcurrentChanges) }

func testConcurrentChanges(t *testing.T, e engine) {
	ctx := context.Background()
	h := newHarness(t, e, fleetYAML)
	before := len(h.snaps)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			id := "kp-c" + string(rune('a'+i))
			if _, err := h.db.AddDevice(ctx, fleetdb.NewDevice{ID: id}); err != nil {
				errs <- err
				return
			}
			w := 10 + i
			errs <- h.db.SetOverride(ctx, fleetdb.LevelDevice, id, &devconfig.Override{VoteWindowS: &w})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	h.mu.Lock()
	got := len(h.snaps) - before
	last := h.snaps[len(h.snaps)-1]
	h.mu.Unlock()
	if got != 2*n {
		t.Errorf("%d snapshots, want %d", got, 2*n)
	}
	if last != h.db.Current() || last.Len() != 2+n {
		t.Errorf("last snapshot has %d devices, current is the last: %v", last.Len(), last == h.db.Current())
	}
	for i := range n {
		c, err := last.Config("kp-c" + string(rune('a'+i)))
		if err != nil || c.VoteWindowS != 10+i {
			t.Errorf("device %d: %+v %v", i, c.VoteWindowS, err)
		}
	}
}
