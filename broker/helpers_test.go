package broker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/semko/semko/protocol"
)

// Accounts every test broker knows.
const (
	dev1, dev1Secret         = "kp-0001", "secret-of-kp-0001-0123456789abcdef"
	dev2, dev2Secret         = "kp-0002", "secret-of-kp-0002-0123456789abcdef"
	backendUser, backendPass = "backend", "backend password typed by a human"
	observerUser, observerPw = "app", "observer password"
)

// waitShort is how long a test waits for something that must NOT happen;
// waitLong bounds something that must.
const (
	waitShort = 300 * time.Millisecond
	waitLong  = 10 * time.Second
)

func testCredentials(t testing.TB) *Credentials {
	t.Helper()
	hash := func(s string) string {
		h, err := HashSecret(s)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	bc, err := bcrypt.GenerateFromPassword([]byte(backendPass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCredentials([]Credential{
		{Username: dev1, Hash: hash(dev1Secret), Role: RoleDevice},
		{Username: dev2, Hash: hash(dev2Secret), Role: RoleDevice},
		{Username: backendUser, Hash: string(bc), Role: RoleBackend},
		{Username: observerUser, Hash: hash(observerPw), Role: RoleObserver},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// recordingIntake records accepted messages; fail, when set, decides the
// error for each message.
type recordingIntake struct {
	got  chan Message
	fail atomic.Pointer[func(Message) error]
}

func newRecordingIntake() *recordingIntake { return &recordingIntake{got: make(chan Message, 1000)} }

func (r *recordingIntake) Accept(ctx context.Context, m Message) error {
	if f := r.fail.Load(); f != nil {
		if err := (*f)(m); err != nil {
			return err
		}
	}
	select {
	case r.got <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *recordingIntake) failWith(f func(Message) error) { r.fail.Store(&f) }

// next returns the next accepted message or fails the test.
func (r *recordingIntake) next(t *testing.T) Message {
	t.Helper()
	select {
	case m := <-r.got:
		return m
	case <-time.After(waitLong):
		t.Fatal("intake received nothing")
		return Message{}
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// startBroker starts a broker on a free loopback port, closed at cleanup.
func startBroker(t *testing.T, opts Options) *Broker {
	t.Helper()
	if opts.TCPAddr == "" && opts.TLSAddr == "" {
		opts.TCPAddr = "127.0.0.1:0"
	}
	if opts.Credentials == nil {
		opts.Credentials = testCredentials(t)
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// client is a paho client whose TCP connection the test can cut.
type client struct {
	paho.Client
	mu   sync.Mutex
	conn *cutConn
	lost chan error
}

// cut closes the TCP connection underneath paho, as a network failure would.
func (c *client) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.cut.Store(true)
		c.conn.Close()
	}
}

// cutConn reports reads after cut as a network failure: paho takes "use of
// closed network connection" for its own orderly close and would not notice.
type cutConn struct {
	net.Conn
	cut atomic.Bool
}

var errCut = errors.New("connection cut by the test")

func (c *cutConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && c.cut.Load() {
		err = errCut
	}
	return n, err
}

type clientOption func(*paho.ClientOptions)

func withReconnect(o *paho.ClientOptions) { o.SetAutoReconnect(true) }

// inOrder hands messages to the handlers one by one in the order they
// arrive (the default here runs each handler on its own goroutine), for
// tests that reason about the broker's delivery order.
func inOrder(o *paho.ClientOptions) { o.SetOrderMatters(true) }

func withWill(topic string, payload []byte) clientOption {
	return func(o *paho.ClientOptions) { o.SetBinaryWill(topic, payload, 1, true) }
}

// connect builds and connects a paho client (MQTT 3.1.1, persistent
// session, as the backend and apps use it; keypads use clean sessions).
func connect(t *testing.T, addr, clientID, user, secret string, opts ...clientOption) (*client, error) {
	t.Helper()
	c := &client{lost: make(chan error, 10)}
	o := paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(clientID).
		SetUsername(user).
		SetPassword(secret).
		SetCleanSession(false).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetMaxReconnectInterval(time.Second).
		SetConnectTimeout(5 * time.Second).
		SetOrderMatters(false).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case c.lost <- err:
			default:
			}
		}).
		SetCustomOpenConnectionFn(func(uri *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			conn, err := net.DialTimeout("tcp", uri.Host, 5*time.Second)
			if err != nil {
				return nil, err
			}
			cc := &cutConn{Conn: conn}
			c.mu.Lock()
			c.conn = cc
			c.mu.Unlock()
			return cc, nil
		})
	for _, opt := range opts {
		opt(o)
	}
	c.Client = paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(waitLong) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

func mustConnect(t *testing.T, addr, clientID, user, secret string, opts ...clientOption) *client {
	t.Helper()
	c, err := connect(t, addr, clientID, user, secret, opts...)
	if err != nil {
		t.Fatalf("connect %s: %v", clientID, err)
	}
	return c
}

// publish publishes at QoS 1 and reports whether the PUBACK came within wait.
func publish(t *testing.T, c paho.Client, topic string, payload []byte, wait time.Duration) (acked bool, tok paho.Token) {
	t.Helper()
	tok = c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(wait) {
		return false, tok
	}
	return tok.Error() == nil, tok
}

func mustPublish(t *testing.T, c paho.Client, topic string, payload []byte) {
	t.Helper()
	if ok, tok := publish(t, c, topic, payload, waitLong); !ok {
		t.Fatalf("publish %s: not acknowledged (%v)", topic, tok.Error())
	}
}

// subscribe subscribes at QoS 1 and returns the SUBACK code and a channel of
// received messages.
func subscribe(t *testing.T, c paho.Client, filter string) (byte, chan paho.Message) {
	t.Helper()
	ch := make(chan paho.Message, 100)
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) { ch <- m })
	if !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	// paho keys the result by the filter without a "$share/<group>/" prefix.
	for _, code := range tok.(*paho.SubscribeToken).Result() {
		return code, ch
	}
	t.Fatalf("subscribe %s: no result", filter)
	return 0, nil
}

func receive(t *testing.T, ch chan paho.Message) paho.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(waitLong):
		t.Fatal("nothing received")
		return nil
	}
}

// votePayload is a valid vote of device with sequence number seq.
func votePayload(t testing.TB, device string, seq uint64) []byte {
	t.Helper()
	v := protocol.SampleVote()
	v.Device, v.Seq = device, seq
	b, err := protocol.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func deathPayload(t testing.TB, device string) []byte {
	t.Helper()
	s := protocol.SampleStatus()
	s.Device, s.Online = device, false
	b, err := protocol.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
