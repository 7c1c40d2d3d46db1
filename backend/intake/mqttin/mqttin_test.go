package mqttin_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/semko/semko/backend/intake/mqttin"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/internal/testwait"
	"github.com/semko/semko/protocol"
)

const (
	device, deviceSecret   = "kp-0001", "secret-of-kp-0001-0123456789abcdef"
	backendUser, backendPw = "backend", "secret-of-the-backend-0123456789"
)

// intake is the fake beside the real broker and clients: it records what
// it accepted and answers from fail for each delivery.
type intake struct {
	mu       sync.Mutex
	seen     map[string]int // payload -> deliveries
	accepted map[string]bool
	fail     func(payload string, delivery int) error
	changed  chan struct{}
}

func newIntake(fail func(string, int) error) *intake {
	return &intake{seen: map[string]int{}, accepted: map[string]bool{}, fail: fail, changed: make(chan struct{}, 1)}
}

func (in *intake) Accept(_ context.Context, t protocol.Topic, payload []byte, _ time.Time) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	p := string(payload)
	in.seen[p]++
	defer func() {
		select {
		case in.changed <- struct{}{}:
		default:
		}
	}()
	if in.fail != nil {
		if err := in.fail(p, in.seen[p]); err != nil {
			return err
		}
	}
	in.accepted[p] = true
	return nil
}

func (in *intake) counts() (accepted int, deliveries map[string]int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	d := make(map[string]int, len(in.seen))
	for k, v := range in.seen {
		d[k] = v
	}
	return len(in.accepted), d
}

func credentials(t *testing.T) *broker.Credentials {
	t.Helper()
	var list []broker.Credential
	for _, a := range []struct {
		user, secret string
		role         broker.Role
	}{{device, deviceSecret, broker.RoleDevice}, {backendUser, backendPw, broker.RoleBackend}} {
		h, err := broker.HashSecret(a.secret)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, broker.Credential{Username: a.user, Hash: h, Role: a.role})
	}
	c, err := broker.NewCredentials(list)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startBroker runs the real broker alone (no Intake) on addr with its
// store in dir.
func startBroker(t *testing.T, addr, dir string) *broker.Broker {
	t.Helper()
	b, err := broker.New(broker.Options{TCPAddr: addr, DataDir: dir, Credentials: credentials(t), PublishRate: -1, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startConsumer(t *testing.T, opts mqttin.Options) (*mqttin.Consumer, func()) {
	t.Helper()
	opts.Username, opts.Secret = backendUser, backendPw
	opts.ReconnectMin, opts.ReconnectMax = 20*time.Millisecond, 200*time.Millisecond
	opts.Logger = discard()
	c, err := mqttin.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	testwait.For(t, "consumer connected", c.Connected)
	return c, stop
}

func deviceClient(t *testing.T, addr string) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(device).
		SetUsername(device).SetPassword(deviceSecret).SetProtocolVersion(4).SetCleanSession(false)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func publishN(t *testing.T, c paho.Client, n int, prefix string) {
	t.Helper()
	for i := range n {
		tok := c.Publish(protocol.DeviceTopic(device, protocol.KindVote), 1, false, fmt.Sprintf("%s-%d", prefix, i))
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
}

var errBusy = errors.New("spool busy")

// TestAcks drives the three outcomes through a real broker: accepted and
// rejected messages are acknowledged once; transient failures are left
// unacknowledged, the consumer reconnects and the broker resends them.
func TestAcks(t *testing.T) {
	const n = 40
	cases := []struct {
		name string
		fail func(p string, delivery int) error
		// want: accepted messages, and whether some were delivered more
		// than once.
		wantAccepted  int
		wantRedeliver bool
		wantRejected  uint64
	}{
		{name: "accepted", wantAccepted: n},
		{name: "permanent", wantAccepted: 0, wantRejected: n,
			fail: func(string, int) error { return fmt.Errorf("bad: %w", protocol.ErrInvalid) }},
		{name: "transient then ok", wantAccepted: n, wantRedeliver: true,
			fail: func(_ string, delivery int) error {
				if delivery == 1 {
					return errBusy
				}
				return nil
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// No DataDir: with pebble, mochi v2.7.9 can lose messages that
			// arrive while a persistent session is being resumed (see
			// README.md); this test is about the consumer's acks.
			b := startBroker(t, "127.0.0.1:0", "")
			in := newIntake(tc.fail)
			c, _ := startConsumer(t, mqttin.Options{URL: "tcp://" + b.Addr(), Intake: in, MaxTransientFailures: 4, RedeliverAfter: 100 * time.Millisecond, Workers: 2, QueueSize: 4})
			publishN(t, deviceClient(t, b.Addr()), n, "vote")

			testwait.For(t, "all handled", func() bool {
				s := c.Stats()
				acc, _ := in.counts()
				return acc == tc.wantAccepted && s.Rejected == tc.wantRejected
			})
			_, deliveries := in.counts()
			if len(deliveries) != n {
				t.Fatalf("intake saw %d distinct messages, want %d", len(deliveries), n)
			}
			redelivered := 0
			for _, d := range deliveries {
				if d > 1 {
					redelivered++
				}
			}
			if tc.wantRedeliver != (redelivered > 0) {
				t.Errorf("%d messages redelivered, want redelivery %v", redelivered, tc.wantRedeliver)
			}
			s := c.Stats()
			if tc.wantRedeliver && s.ForcedReconnects == 0 {
				t.Errorf("no forced reconnect: %+v", s)
			}
			if !tc.wantRedeliver && redelivered > 0 {
				t.Errorf("acknowledged messages came again: %+v", s)
			}
		})
	}
}

// TestSessionSurvivesBrokerRestart: messages published while the backend
// is away wait in its persistent session, across a restart of the broker
// on the same data dir, and arrive once the backend connects again.
func TestSessionSurvivesBrokerRestart(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, "127.0.0.1:0", dir)
	addr := b.Addr()
	in := newIntake(nil)
	c, stop := startConsumer(t, mqttin.Options{URL: "tcp://" + addr, Intake: in})
	stop() // the session (and its subscriptions) stays on the broker
	if c.Connected() {
		t.Fatal("still connected after stop")
	}

	dev := deviceClient(t, addr)
	publishN(t, dev, 25, "offline")
	dev.Disconnect(0)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = startBroker(t, addr, dir)

	c2, _ := startConsumer(t, mqttin.Options{URL: "tcp://" + b.Addr(), Intake: in})
	testwait.For(t, "queued messages delivered", func() bool { n, _ := in.counts(); return n == 25 })
	_ = c2
}

// TestPublish: downstream messages go out through the consumer's
// connection to the device's subscription; bad topics are refused.
func TestPublish(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0", "")
	c, _ := startConsumer(t, mqttin.Options{URL: "tcp://" + b.Addr(), Intake: newIntake(nil)})

	got := make(chan string, 1)
	dev := deviceClient(t, b.Addr())
	topic := protocol.DeviceTopic(device, protocol.KindActivate)
	if tok := dev.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if err := c.Publish(topic, []byte("open"), false, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p != "open" {
			t.Fatalf("got %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("device did not receive the activation")
	}
	for _, bad := range []string{"other/topic", protocol.Root + "/devices/+/activate"} {
		if err := c.Publish(bad, nil, false, 1); !errors.Is(err, mqttin.ErrTopic) {
			t.Errorf("Publish(%q) = %v, want ErrTopic", bad, err)
		}
	}
}

func TestOptions(t *testing.T) {
	in := newIntake(nil)
	cases := []struct {
		name string
		opts mqttin.Options
	}{
		{"no url", mqttin.Options{Username: "u", Intake: in}},
		{"bad scheme", mqttin.Options{URL: "http://x", Username: "u", Intake: in}},
		{"no user", mqttin.Options{URL: "tcp://x:1", Intake: in}},
		{"no intake", mqttin.Options{URL: "tcp://x:1", Username: "u"}},
		{"bad group", mqttin.Options{URL: "tcp://x:1", Username: "u", Intake: in, SharedGroup: "a/b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := mqttin.New(tc.opts); !errors.Is(err, mqttin.ErrOptions) {
				t.Fatalf("New = %v, want ErrOptions", err)
			}
		})
	}
	c, err := mqttin.New(mqttin.Options{URL: "tcp://x:1", Username: "u", Intake: in, SharedGroup: "semko"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range c.Filters() {
		if want := "$share/semko/" + protocol.Root; f[:len(want)] != want {
			t.Errorf("filter %q not shared", f)
		}
	}
	if n := len(c.Filters()); n != 6 {
		t.Errorf("%d filters, want one per upstream kind (6)", n)
	}
}

// TestReconnectAfterBrokerLoss: the consumer comes back on its own when
// the broker returns on the same address.
func TestReconnectAfterBrokerLoss(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, "127.0.0.1:0", dir)
	addr := b.Addr()
	in := newIntake(nil)
	c, _ := startConsumer(t, mqttin.Options{URL: "tcp://" + addr, Intake: in})
	b.Close()
	testwait.For(t, "disconnect noticed", func() bool { return !c.Connected() })
	// The port may be taken between Close and listen in theory; on
	// loopback with a port the OS just released it is ours in practice.
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("old broker still listening")
	}
	b = startBroker(t, addr, dir)
	testwait.For(t, "reconnected", c.Connected)
	publishN(t, deviceClient(t, b.Addr()), 5, "after")
	testwait.For(t, "delivered", func() bool { n, _ := in.counts(); return n == 5 })
	if s := c.Stats(); s.Connects < 2 {
		t.Errorf("connects = %d, want 2", s.Connects)
	}
}
