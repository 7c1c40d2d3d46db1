package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/semko/semko/backend/fleet/live"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/protocol"
)

// fleet places kp-0001 (the samples' device) and knows kp-0002, unplaced.
const fleet = `
organisations:
  - id: org-1
    timezone: Europe/Sofia
    sites:
      - id: site-1
        counters:
          - {id: c-1, device: kp-0001, service: passport}
devices:
  - {id: kp-0001, secret_hash: "sha256$00$0000000000000000000000000000000000000000000000000000000000000000"}
  - {id: kp-0002, secret_hash: "sha256$00$0000000000000000000000000000000000000000000000000000000000000000"}
services:
  - {id: passport}
`

// now is just after the samples' timestamps.
var now = protocol.SampleVote().Time.Add(time.Second)

// memSpool is an in-memory Appender whose failure can be switched on.
type memSpool struct {
	mu   sync.Mutex
	recs []string
	err  error
}

func (s *memSpool) Append(_ context.Context, recs ...[]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	for _, r := range recs {
		s.recs = append(s.recs, string(r))
	}
	return nil
}

func (s *memSpool) fail(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *memSpool) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.recs...)
}

func mustRegistry(t testing.TB) *registry.Registry {
	t.Helper()
	r, err := registry.Parse(strings.NewReader(fleet))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type fixture struct {
	in    *Ingest
	spool *memSpool
	prom  *prometheus.Registry
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newFixture(t testing.TB, app Appender) *fixture {
	t.Helper()
	reg := mustRegistry(t)
	f := &fixture{spool: &memSpool{}, prom: prometheus.NewRegistry(), logs: &syncBuffer{}}
	if app == nil {
		app = f.spool
	}
	in, err := New(Options{
		Registry:   func() *registry.Registry { return reg },
		Spool:      app,
		Now:        func() time.Time { return now },
		Logger:     slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: f.prom,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.in = in
	return f
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// samples returns one valid upstream message of every kind.
func samples(t testing.TB) map[protocol.Kind][]byte {
	return map[protocol.Kind][]byte{
		protocol.KindVote:          mustJSON(t, protocol.SampleVote()),
		protocol.KindActivation:    mustJSON(t, protocol.SampleActivationRecord()),
		protocol.KindHeartbeat:     mustJSON(t, protocol.SampleHeartbeat()),
		protocol.KindStatus:        mustJSON(t, protocol.SampleStatus()),
		protocol.KindConfigApplied: mustJSON(t, protocol.SampleConfigApplied()),
		protocol.KindCommandResult: mustJSON(t, protocol.SampleCommandResult()),
	}
}

func topic(kind protocol.Kind) protocol.Topic { return protocol.Topic{Device: "kp-0001", Kind: kind} }

func TestAcceptSamples(t *testing.T) {
	tests := []struct {
		kind      protocol.Kind
		wantLines int
	}{
		{protocol.KindVote, 1},
		{protocol.KindActivation, 1},
		{protocol.KindHeartbeat, 1},
		{protocol.KindStatus, 1},
		{protocol.KindConfigApplied, 0},
		{protocol.KindCommandResult, 0},
	}
	all := samples(t)
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			f := newFixture(t, nil)
			if err := f.in.Accept(t.Context(), topic(tt.kind), all[tt.kind], now); err != nil {
				t.Fatalf("Accept: %v", err)
			}
			lines := f.spool.lines()
			if len(lines) != tt.wantLines {
				t.Fatalf("spooled %d lines, want %d: %q", len(lines), tt.wantLines, lines)
			}
			if got := testutil.ToFloat64(f.in.m.messages.WithLabelValues(string(tt.kind))); got != 1 {
				t.Errorf("messages_total{kind=%s} = %v, want 1", tt.kind, got)
			}
			st := f.in.Devices()[0]
			if st.Device != "kp-0001" || !st.Online || !st.LastSeen.Equal(now) || st.Placement.Counter != "c-1" {
				t.Errorf("state = %+v", st)
			}
		})
	}
}

func TestAcceptRejects(t *testing.T) {
	vote := func(change func(*protocol.Vote)) []byte {
		v := protocol.SampleVote()
		change(&v)
		return mustJSON(t, v)
	}
	sample := mustJSON(t, protocol.SampleVote())
	tests := []struct {
		name    string
		topic   protocol.Topic
		payload []byte
		reason  string
	}{
		{"not json", topic(protocol.KindVote), []byte(`{"v":1,`), ReasonDecode},
		{"two objects", topic(protocol.KindVote), append(append([]byte{}, sample...), sample...), ReasonDecode},
		{"wrong type", topic(protocol.KindVote), []byte(`{"v":1,"score":"five"}`), ReasonInvalid},
		{"version", topic(protocol.KindVote), vote(func(v *protocol.Vote) { v.V = 2 }), ReasonVersion},
		{"score out of range", topic(protocol.KindVote), vote(func(v *protocol.Vote) { v.Score = 6 }), ReasonInvalid},
		{"spoofed", topic(protocol.KindVote), vote(func(v *protocol.Vote) { v.Device = "kp-0002" }), ReasonSpoofed},
		{"unknown device", protocol.Topic{Device: "kp-9999", Kind: protocol.KindVote}, sample, ReasonUnknownDevice},
		{"too large", topic(protocol.KindVote), bytes.Repeat([]byte(" "), protocol.MaxPayload+1), ReasonTooLarge},
		{"downstream kind", topic(protocol.KindConfig), mustJSON(t, protocol.SampleConfig()), ReasonInvalid},
		{"made-up kind", protocol.Topic{Device: "kp-0001", Kind: "bogus"}, sample, ReasonInvalid},
		{"spoofed status", topic(protocol.KindStatus), mustJSON(t, protocol.Status{V: 1, Device: "kp-0002", Time: now, BootID: "b", Online: true}), ReasonSpoofed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			err := f.in.Accept(t.Context(), tt.topic, tt.payload, now)
			if err == nil {
				t.Fatal("accepted")
			}
			if !protocol.Permanent(err) {
				t.Fatalf("not permanent: %v", err)
			}
			if len(f.spool.lines()) != 0 {
				t.Fatal("rejected message was spooled")
			}
			sum := f.in.Snapshot()
			if sum.Rejected != 1 || sum.RejectedBy[tt.reason] != 1 {
				t.Errorf("summary %+v, want one %s", sum, tt.reason)
			}
			kind := string(tt.topic.Kind)
			if !tt.topic.Kind.Upstream() {
				kind = kindOther
			}
			if got := testutil.ToFloat64(f.in.m.rejected.WithLabelValues(kind, tt.reason)); got != 1 {
				t.Errorf("rejected_total{%s,%s} = %v", kind, tt.reason, got)
			}
			logs := f.logs.String()
			if !strings.Contains(logs, "reason="+tt.reason) || !strings.Contains(logs, "message rejected") {
				t.Errorf("no clear log line:\n%s", logs)
			}
		})
	}
}

func TestTransientErrors(t *testing.T) {
	f := newFixture(t, nil)
	full := errors.New("spool full (test)")
	f.spool.fail(full)
	vote := mustJSON(t, protocol.SampleVote())
	err := f.in.Accept(t.Context(), topic(protocol.KindVote), vote, now)
	if err == nil || protocol.Permanent(err) || !errors.Is(err, full) {
		t.Fatalf("Accept with a failing spool = %v, want transient wrapping the spool's error", err)
	}
	if f.in.Snapshot().Rejected != 0 {
		t.Error("transient failure counted as a rejection")
	}
	// The resend after recovery must be spooled: a failed append is not "seen".
	f.spool.fail(nil)
	if err := f.in.Accept(t.Context(), topic(protocol.KindVote), vote, now); err != nil {
		t.Fatal(err)
	}
	if n := len(f.spool.lines()); n != 1 {
		t.Fatalf("spooled %d, want 1", n)
	}
}

func TestDuplicates(t *testing.T) {
	f := newFixture(t, nil)
	vote := mustJSON(t, protocol.SampleVote())
	for range 3 {
		if err := f.in.Accept(t.Context(), topic(protocol.KindVote), vote, now); err != nil {
			t.Fatal(err)
		}
	}
	other := protocol.SampleVote()
	other.Seq++
	if err := f.in.Accept(t.Context(), topic(protocol.KindVote), mustJSON(t, other), now); err != nil {
		t.Fatal(err)
	}
	if n := len(f.spool.lines()); n != 2 {
		t.Fatalf("spooled %d lines, want 2", n)
	}
	if got := testutil.ToFloat64(f.in.m.duplicates); got != 2 {
		t.Errorf("duplicates_total = %v, want 2", got)
	}
	s := f.in.Snapshot()
	if s.Duplicates != 2 || s.Accepted != 4 || s.VotesLastMinute != 2 || s.SatisfiedShareLastMinute != 1 {
		t.Errorf("summary = %+v", s)
	}
}

func TestSeenSetBound(t *testing.T) {
	s := newSeenSet(3)
	for seq := range uint64(10) {
		s.add(seenKey{"d", protocol.KindVote, seq, 0})
	}
	if s.len() != 3 {
		t.Fatalf("len = %d, want 3", s.len())
	}
	if s.has(seenKey{"d", protocol.KindVote, 6, 0}) || !s.has(seenKey{"d", protocol.KindVote, 9, 0}) {
		t.Error("did not keep the most recent keys")
	}
}

func TestPresence(t *testing.T) {
	status := func(online bool, bdseq uint64) []byte {
		return mustJSON(t, protocol.Status{V: 1, Device: "kp-0001", Time: now.Add(-time.Hour), Online: online, BootID: "b-1", BDSeq: bdseq})
	}
	type step struct {
		payload    []byte
		wantOnline bool
		wantLines  int // spooled so far
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"birth then death", []step{{status(true, 8), true, 1}, {status(false, 8), false, 2}}},
		{"late death after a takeover", []step{{status(true, 7), true, 1}, {status(true, 8), true, 2}, {status(false, 7), true, 2}, {status(false, 8), false, 3}}},
		{"death before any birth", []step{{status(false, 3), false, 1}}},
		{"death of a newer connection", []step{{status(true, 1), true, 1}, {status(false, 2), false, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			for n, s := range tt.steps {
				if err := f.in.Accept(t.Context(), topic(protocol.KindStatus), s.payload, now); err != nil {
					t.Fatalf("step %d: %v", n, err)
				}
				st := f.in.Devices()[0]
				if st.Online != s.wantOnline {
					t.Fatalf("step %d: online = %v, want %v", n, st.Online, s.wantOnline)
				}
				if got := len(f.spool.lines()); got != s.wantLines {
					t.Fatalf("step %d: %d lines spooled, want %d", n, got, s.wantLines)
				}
				want := 0.0
				if s.wantOnline {
					want = 1
				}
				if got := testutil.ToFloat64(f.in.m.online); got != want {
					t.Fatalf("step %d: semko_devices_online = %v", n, got)
				}
			}
		})
	}
}

func TestDeathTakesReceiptTime(t *testing.T) {
	f := newFixture(t, nil)
	// A will composed 40 days ago, when the connection began.
	will := protocol.Status{V: 1, Device: "kp-0001", Time: now.Add(-40 * 24 * time.Hour), BootID: "b-1", BDSeq: 1}
	if err := f.in.Accept(t.Context(), topic(protocol.KindStatus), mustJSON(t, will), now); err != nil {
		t.Fatalf("old will rejected: %v", err)
	}
	if lines := f.spool.lines(); len(lines) != 1 || !strings.HasSuffix(lines[0], " "+itoa(now.UnixNano())) {
		t.Fatalf("presence point not at receipt time: %q", lines)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestLiveState(t *testing.T) {
	f := newFixture(t, nil)
	all := samples(t)
	for _, k := range []protocol.Kind{protocol.KindStatus, protocol.KindHeartbeat, protocol.KindConfigApplied, protocol.KindCommandResult} {
		if err := f.in.Accept(t.Context(), topic(k), all[k], now); err != nil {
			t.Fatal(err)
		}
	}
	refused := protocol.ConfigApplied{V: 1, Device: "kp-0001", Time: now, Version: "org-4", Error: "panel text too long"}
	if err := f.in.Accept(t.Context(), topic(protocol.KindConfigApplied), mustJSON(t, refused), now); err != nil {
		t.Fatal(err)
	}
	devs := f.in.Devices()
	if len(devs) != 2 {
		t.Fatalf("devices = %d, want 2 (every registry device)", len(devs))
	}
	h := protocol.SampleHeartbeat()
	got := devs[0]
	want := live.DeviceState{
		Device: "kp-0001", Placement: registry.Placement{Org: "org-1", Site: "site-1", Counter: "c-1", Service: "passport"},
		Online: true, LastSeen: now, LastHeartbeat: h.Time, FW: h.FW, BootID: h.BootID, BDSeq: 7, Outbox: h.Outbox,
		ConfigVersion: "org-3", ConfigError: "panel text too long", LastCommand: "cmd-19", LastCommandOK: true,
		HeartbeatReceived: now,
		Health: live.Health{UptimeS: h.UptimeS, RSSI: h.RSSI, TempC: h.TempC, SupplyV: h.SupplyV, ClockOffsetMS: h.ClockOffsetMS,
			Presses: h.Presses, PanelOK: true, BacklightOK: true},
		// The sample heartbeat was made a second before it arrived, half
		// its round trip of 48 ms earlier, on a clock 340 ms slow.
		Clock: live.ClockState{Measured: true, Synced: true,
			OffsetMS:     h.Time.Sub(now).Milliseconds() - 340 + 24,
			StampErrorMS: h.Time.Sub(now).Milliseconds() + 24},
		Commands: []live.CommandOutcome{{ID: "cmd-19", OK: true, Detail: protocol.SampleCommandResult().Detail, Received: now}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("state\n got %+v\nwant %+v", got, want)
	}
	if devs[1].Device != "kp-0002" || devs[1].Online || !devs[1].LastSeen.IsZero() {
		t.Errorf("unheard device = %+v", devs[1])
	}
	s := f.in.Snapshot()
	if s.UnitsKnown != 2 || s.UnitsOnline != 1 {
		t.Errorf("summary = %+v", s)
	}
}

func TestUnplacedDeviceAccepted(t *testing.T) {
	f := newFixture(t, nil)
	v := protocol.SampleVote()
	v.Device = "kp-0002"
	err := f.in.Accept(t.Context(), protocol.Topic{Device: "kp-0002", Kind: protocol.KindVote}, mustJSON(t, v), now)
	if err != nil {
		t.Fatal(err)
	}
}

func TestRejectionLogIsRateLimited(t *testing.T) {
	f := newFixture(t, nil)
	for range 500 {
		_ = f.in.Accept(t.Context(), topic(protocol.KindVote), []byte("garbage"), now)
	}
	lines := strings.Count(f.logs.String(), "message rejected")
	// The limiter runs on the wall clock; the loop may straddle a second.
	if lines < 1 || lines > 3*DefaultLogPerSecond {
		t.Errorf("%d rejection lines for 500 rejections", lines)
	}
	if got := testutil.ToFloat64(f.in.m.rejected.WithLabelValues("vote", ReasonDecode)); got != 500 {
		t.Errorf("rejected_total = %v, want 500 (the metric is not limited)", got)
	}
}

func TestNewOptions(t *testing.T) {
	reg := func() *registry.Registry { return &registry.Registry{} }
	tests := []struct {
		name string
		opts Options
	}{
		{"no registry", Options{Spool: &memSpool{}}},
		{"no spool", Options{Registry: reg}},
		{"negative age", Options{Registry: reg, Spool: &memSpool{}, MaxAge: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); !errors.Is(err, ErrOptions) {
				t.Fatalf("New = %v, want ErrOptions", err)
			}
		})
	}
	prom := prometheus.NewRegistry()
	if _, err := New(Options{Registry: reg, Spool: &memSpool{}, Registerer: prom}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Registry: reg, Spool: &memSpool{}, Registerer: prom}); err == nil {
		t.Fatal("second registration on one registerer accepted")
	}
}

func TestConcurrentAccept(t *testing.T) {
	f := newFixture(t, nil)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 200 {
				v := protocol.SampleVote()
				v.Seq = uint64(w*1000 + n + 1)
				if err := f.in.Accept(context.Background(), topic(protocol.KindVote), mustJSON(t, v), now); err != nil {
					t.Error(err)
					return
				}
				_ = f.in.Snapshot()
				_ = f.in.Devices()
			}
		}()
	}
	wg.Wait()
	if n := len(f.spool.lines()); n != 1600 {
		t.Fatalf("spooled %d, want 1600", n)
	}
}

// TestRegistryReload: a device added to the fleet file is accepted as soon
// as the store reloads, without a new Ingest.
func TestRegistryReload(t *testing.T) {
	path := t.TempDir() + "/fleet.yaml"
	if err := os.WriteFile(path, []byte(fleet), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := registry.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	in, err := New(Options{Registry: store.Current, Spool: &memSpool{}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	v := protocol.SampleVote()
	v.Device = "kp-0003"
	payload := mustJSON(t, v)
	tp := protocol.Topic{Device: "kp-0003", Kind: protocol.KindVote}
	if err := in.Accept(t.Context(), tp, payload, now); !errors.Is(err, ErrUnknownDevice) || !protocol.Permanent(err) {
		t.Fatalf("before reload: %v", err)
	}
	grown := strings.Replace(fleet, "services:", "  - {id: kp-0003, secret_hash: \"sha256$00$0000000000000000000000000000000000000000000000000000000000000000\"}\nservices:", 1)
	if err := os.WriteFile(path, []byte(grown), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := store.Reload(path); err != nil {
		t.Fatal(err)
	}
	if err := in.Accept(t.Context(), tp, payload, now); err != nil {
		t.Fatalf("after reload: %v", err)
	}
}
