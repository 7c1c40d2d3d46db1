package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/semko/semko/protocol"
)

// testLogger logs to the test output with -v, and nowhere otherwise.
func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// recorder collects every message devices publish, as the broker receives
// it. It outlives broker restarts.
type recorder struct {
	mu   sync.Mutex
	msgs []recorded
}

type recorded struct {
	topic   protocol.Topic
	payload []byte
	retain  bool
}

func (r *recorder) add(m recorded) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *recorder) of(kind protocol.Kind) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]byte
	for _, m := range r.msgs {
		if m.topic.Kind == kind {
			out = append(out, m.payload)
		}
	}
	return out
}

// votes returns the distinct votes received, by seq.
func (r *recorder) votes(t *testing.T) map[uint64]protocol.Vote {
	t.Helper()
	out := map[uint64]protocol.Vote{}
	for _, p := range r.of(protocol.KindVote) {
		v, err := protocol.Decode[protocol.Vote](p)
		if err != nil {
			t.Fatalf("bad vote on the wire: %v: %s", err, p)
		}
		out[v.Seq] = v
	}
	return out
}

func (r *recorder) activations(t *testing.T) []protocol.ActivationRecord {
	t.Helper()
	var out []protocol.ActivationRecord
	for _, p := range r.of(protocol.KindActivation) {
		v, err := protocol.Decode[protocol.ActivationRecord](p)
		if err != nil {
			t.Fatalf("bad activation record: %v", err)
		}
		out = append(out, v)
	}
	return out
}

// recordHook allows everyone and records device publishes before the
// PUBACK, which is what "the broker has it" means.
type recordHook struct {
	mqtt.HookBase
	rec *recorder
}

func (h *recordHook) ID() string { return "test-recorder" }

func (h *recordHook) Provides(b byte) bool { return b == mqtt.OnPublish }

func (h *recordHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	if t, err := protocol.ParseTopic(pk.TopicName); err == nil {
		h.rec.add(recorded{topic: t, payload: bytes.Clone(pk.Payload), retain: pk.FixedHeader.Retain})
	}
	return pk, nil
}

type testBroker struct {
	addr   string
	server *mqtt.Server
	rec    *recorder
	once   sync.Once
	quit   chan struct{}
	beat   sync.WaitGroup
}

// stop closes the broker and its connections; safe to call twice.
func (b *testBroker) stop() {
	b.once.Do(func() {
		close(b.quit)
		b.beat.Wait()
		b.server.Close()
	})
}

// beacons publishes the time beacon as the backend does, more often.
func (b *testBroker) beacons(now func() time.Time) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		data, _ := protocol.Encode(protocol.TimeBeacon{V: protocol.Version, Time: now()})
		_ = b.server.Publish(protocol.TimeTopic, data, false, 0)
		select {
		case <-b.quit:
			return
		case <-tick.C:
		}
	}
}

// startBroker runs a real mochi broker on addr ("127.0.0.1:0" for a fresh
// port) that publishes the time beacon as the backend does; rec may be
// shared with an earlier broker on the same address.
func startBroker(t *testing.T, addr string, rec *recorder) *testBroker {
	t.Helper()
	return startBrokerBeacon(t, addr, rec, true)
}

// startBrokerBeacon is startBroker, without the time beacon if beacon is
// false.
func startBrokerBeacon(t *testing.T, addr string, rec *recorder, beacon bool) *testBroker {
	t.Helper()
	var ln net.Listener
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the old listener's port is being released
	}
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AddHook(&recordHook{rec: rec}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AddListener(listeners.NewNet("t", ln)); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	b := &testBroker{addr: ln.Addr().String(), server: s, rec: rec, quit: make(chan struct{})}
	if beacon {
		b.beat.Add(1)
		go func() { defer b.beat.Done(); b.beacons(time.Now) }()
	}
	t.Cleanup(b.stop)
	return b
}

func (b *testBroker) url() string { return "tcp://" + b.addr }

func (b *testBroker) publish(t *testing.T, topic string, v any, retain bool) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.server.Publish(topic, data, retain, 1); err != nil {
		t.Fatal(err)
	}
}

// subscribed reports whether someone listens on topic.
func (b *testBroker) subscribed(topic string) bool {
	return len(b.server.Topics.Subscribers(topic).Subscriptions) > 0
}

// testKeypad is the keypad's end of a net.Pipe, driven by the test.
type testKeypad struct {
	conn   net.Conn
	frames chan protocol.Frame
}

func newTestKeypad(t *testing.T) (agentEnd io.ReadWriteCloser, kp *testKeypad) {
	a, b := net.Pipe()
	kp = &testKeypad{conn: b, frames: make(chan protocol.Frame, 1024)}
	go func() {
		defer close(kp.frames)
		fr := protocol.NewFrameReader(b)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				if errors.Is(err, protocol.ErrFrame) || errors.Is(err, protocol.ErrChecksum) {
					continue
				}
				return
			}
			kp.frames <- f
		}
	}()
	t.Cleanup(func() { b.Close() })
	return a, kp
}

func (k *testKeypad) send(t *testing.T, f protocol.Frame) {
	t.Helper()
	k.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := k.conn.Write(f.Bytes()); err != nil {
		t.Fatalf("keypad write %s: %v", f.Type, err)
	}
}

func (k *testKeypad) press(t *testing.T, key int, kseq uint32) {
	t.Helper()
	k.send(t, protocol.KeyPress{Key: key, Seq: kseq, Clock: time.Now()}.Frame())
}

// expect skips frames until one of type typ arrives.
func (k *testKeypad) expect(t *testing.T, typ string) protocol.Frame {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f, ok := <-k.frames:
			if !ok {
				t.Fatalf("keypad line closed waiting for %s", typ)
			}
			if f.Type == typ {
				return f
			}
		case <-timeout:
			t.Fatalf("no %s frame", typ)
		}
	}
}

// runAgent starts an agent and stops it at cleanup; stop stops it earlier.
type runningAgent struct {
	*Agent
	kp   *testKeypad
	stop func()
}

func startAgent(t *testing.T, cfg Config) *runningAgent {
	t.Helper()
	if cfg.Device == "" {
		cfg.Device = "kp-0001"
	}
	if cfg.Secret == "" {
		cfg.Secret = "s3cret"
	}
	if cfg.ReconnectMin == 0 {
		cfg.ReconnectMin, cfg.ReconnectMax = 20*time.Millisecond, 200*time.Millisecond
	}
	if cfg.PublishTimeout == 0 {
		cfg.PublishTimeout = 2 * time.Second
	}
	cfg.Logger = testLogger(t)
	end, kp := newTestKeypad(t)
	a, err := New(cfg, end)
	if err != nil {
		t.Fatalf("new agent: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("agent did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return &runningAgent{Agent: a, kp: kp, stop: stop}
}
