package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/semko/semko/broker"
	"github.com/semko/semko/internal/testwait"
	"github.com/semko/semko/protocol"
)

// intake records the votes and heartbeats a real broker took, by key.
type intake struct {
	mu         sync.Mutex
	votes      map[string]int // device/seq -> deliveries
	heartbeats int
}

func (in *intake) Accept(_ context.Context, m broker.Message) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	switch m.Topic.Kind {
	case protocol.KindVote:
		v, err := protocol.Decode[protocol.Vote](m.Payload)
		if err != nil {
			return err
		}
		in.votes[fmt.Sprintf("%s/%d", v.Device, v.Seq)]++
	case protocol.KindHeartbeat:
		in.heartbeats++
	}
	return nil
}

func (in *intake) counts() (unique, heartbeats int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.votes), in.heartbeats
}

func devices(n int) []Device {
	var d []Device
	for i := range n {
		d = append(d, Device{ID: fmt.Sprintf("kp-%04d", i+1), Secret: fmt.Sprintf("secret-%04d-0123456789", i+1)})
	}
	return d
}

// startBroker runs a real broker on addr ("127.0.0.1:0" for a free port)
// until the returned stop is called.
func startBroker(t *testing.T, addr string, devs []Device, in *intake) (*broker.Broker, func()) {
	t.Helper()
	var list []broker.Credential
	for _, d := range devs {
		h, err := broker.HashSecret(d.Secret)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, broker.Credential{Username: d.ID, Hash: h, Role: broker.RoleDevice})
	}
	creds, err := broker.NewCredentials(list)
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Options{TCPAddr: addr, Credentials: creds, Intake: in})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { _ = b.Close() }) }
	t.Cleanup(stop)
	return b, stop
}

func runFleet(t *testing.T, opts Options) *Fleet {
	t.Helper()
	f, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

// TestDeliversEveryVoteThroughARestart sends votes through a real broker,
// drops every unit by closing it, presses more while it is down, and checks
// that a new broker on the same address receives every vote, each seq
// once or more, and that the units' counters agree.
func TestDeliversEveryVoteThroughARestart(t *testing.T) {
	devs := devices(5)
	in := &intake{votes: map[string]int{}}
	b, stop := startBroker(t, "127.0.0.1:0", devs, in)
	addr := b.Addr()
	f := runFleet(t, Options{Broker: "tcp://" + addr, Devices: devs, Window: 4, Jitter: 50 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond, Heartbeat: 50 * time.Millisecond, UnitsPerAddr: 2})
	testwait.For(t, "all connected", func() bool { return f.Stats().Connected == 5 })
	if err := f.EnqueueAll(20); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "first votes acknowledged", func() bool { return f.Stats().Acked == 100 })

	stop()
	testwait.For(t, "all dropped", func() bool { return f.Stats().Connected == 0 })
	if err := f.EnqueueAll(10); err != nil {
		t.Fatal(err)
	}
	startBroker(t, addr, devs, in)
	testwait.For(t, "queued votes acknowledged", func() bool { return f.Stats().Acked == 150 })

	unique, heartbeats := in.counts()
	s := f.Stats()
	if unique != 150 || s.Enqueued != 150 || s.Pending != 0 {
		t.Errorf("broker took %d distinct votes; fleet pressed %d, %d pending; want 150, 150, 0", unique, s.Enqueued, s.Pending)
	}
	if s.Reconnects < 5 {
		t.Errorf("reconnects = %d, want at least 5", s.Reconnects)
	}
	if heartbeats == 0 {
		t.Error("no heartbeat reached the broker")
	}
	if seq, ts := f.LastPressed(0); seq != 30 || ts.IsZero() {
		t.Errorf("LastPressed(0) = %d, %v", seq, ts)
	}
}

func TestEnqueueBounded(t *testing.T) {
	f, err := New(Options{Broker: "tcp://127.0.0.1:1", Devices: devices(1), OutboxLimit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Enqueue(0, 10); err != nil {
		t.Fatal(err)
	}
	if err := f.Enqueue(0, 1); err == nil {
		t.Fatal("enqueue past the limit accepted")
	}
	if n := f.TopUp(10); n != 0 {
		t.Errorf("TopUp on a full outbox pressed %d", n)
	}
}

func TestNewRejects(t *testing.T) {
	for name, opts := range map[string]Options{
		"no broker":  {Devices: devices(1)},
		"no devices": {Broker: "tcp://127.0.0.1:1"},
		"bad id":     {Broker: "tcp://127.0.0.1:1", Devices: []Device{{ID: "a/b"}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(opts); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestServe drives the line protocol the benchmark uses for a generator in
// its own process.
func TestServe(t *testing.T) {
	f, err := New(Options{Broker: "tcp://127.0.0.1:1", Devices: devices(2), OutboxLimit: 5})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want string }{
		{"enqueue-all 3", "ok"},
		{"stats", `"Enqueued":6`},
		{"enqueue-all 3", "error loadgen: outbox full"},
		{"enqueue-all x", "error "},
		{"frobnicate", `error unknown command "frobnicate"`},
	}
	var in strings.Builder
	for _, tt := range tests {
		in.WriteString(tt.in + "\n")
	}
	in.WriteString("quit\nstats\n")
	var out bytes.Buffer
	if err := Serve(t.Context(), f, strings.NewReader(in.String()), &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(tests) {
		t.Fatalf("%d answers, want %d (nothing after quit): %q", len(lines), len(tests), lines)
	}
	for i, tt := range tests {
		if !strings.Contains(lines[i], tt.want) {
			t.Errorf("%q answered %q, want it to contain %q", tt.in, lines[i], tt.want)
		}
	}
}

// TestMain doubles as the generator child of TestRemote.
func TestMain(m *testing.M) {
	if path := os.Getenv("LOADGEN_TEST_CHILD"); path != "" {
		opts, err := ReadOptions(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		f, err := New(opts)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = f.Run(ctx) }()
		err = Serve(ctx, f, os.Stdin, os.Stdout)
		cancel()
		<-done
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestRemote runs a fleet in a child process against a real broker.
func TestRemote(t *testing.T) {
	devs := devices(3)
	in := &intake{votes: map[string]int{}}
	b, _ := startBroker(t, "127.0.0.1:0", devs, in)
	path := filepath.Join(t.TempDir(), "gen.json")
	t.Setenv("LOADGEN_TEST_CHILD", path)
	r, err := StartRemote([]string{os.Args[0]}, path, Options{Broker: "tcp://" + b.Addr(), Devices: devs,
		Jitter: 10 * time.Millisecond}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.EnqueueAll(7); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "remote votes acknowledged", func() bool {
		s, err := r.Stats()
		return err == nil && s.Acked == 21 && s.Connected == 3
	})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if unique, _ := in.counts(); unique != 21 {
		t.Errorf("broker took %d distinct votes, want 21", unique)
	}
}
