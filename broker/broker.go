// Package broker is Semko's MQTT broker: mochi-mqtt/server/v2 with
// per-device credentials and ACLs, a durable intake that sees every device
// message before the device's PUBACK, rate and size limits, TLS and pebble
// persistence. The backend embeds it; it also runs alone.
//
// The broker's features are mochi hooks: authHook (who may connect, and the
// ACL), intakeHook (Intake before PUBACK, rate limit, wills) and presenceHook
// (device sessions up and down). README.md explains roles, limits and TLS.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	pebbledb "github.com/cockroachdb/pebble"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/pebble"

	"github.com/semko/semko/internal/connlimit"
	"github.com/semko/semko/internal/loglimit"
	"github.com/semko/semko/protocol"
)

// Message is one upstream device message as Intake receives it.
type Message struct {
	Topic    protocol.Topic
	Payload  []byte // a copy: Intake may keep it
	Received time.Time
	ClientID string
}

// Intake receives every upstream device message (and device will) before
// the broker acknowledges it: mochi runs OnPublish before the PUBACK.
//
// Return nil once the message is durable. If protocol.Permanent(err), the
// message itself is bad: the device gets its PUBACK and forgets it, nobody
// receives it, and Stats.RejectedInvalid counts it. Any other error withholds
// the PUBACK, so the device keeps the message and sends it again (an MQTT
// 3.1.1 client resends on its next connection); Stats.IntakeRetries counts
// it. Accept runs on the device's connection goroutine and must respect ctx.
type Intake interface {
	Accept(ctx context.Context, m Message) error
}

// IntakeFunc adapts a function to Intake.
type IntakeFunc func(ctx context.Context, m Message) error

// Accept calls f.
func (f IntakeFunc) Accept(ctx context.Context, m Message) error { return f(ctx, m) }

// Options configures a Broker. Zero values take the defaults named on each
// field.
type Options struct {
	// TCPAddr is the plain MQTT listener, e.g. "127.0.0.1:1883"; ":0" picks a
	// free port (see Addr). Empty disables it.
	TCPAddr string
	// TLSAddr is the MQTT-over-TLS listener (conventionally port 8883); it
	// needs TLSConfig. Set TLSConfig.ClientAuth and ClientCAs for mutual
	// TLS; clients still authenticate with username and secret.
	TLSAddr   string
	TLSConfig *tls.Config

	// DataDir, a directory the broker owns, keeps sessions, subscriptions,
	// retained and inflight messages in pebble, synced on every write, so
	// they survive a restart. Empty keeps them in memory only.
	DataDir string

	// Credentials are the accounts allowed to connect. Required: there is no
	// anonymous access.
	Credentials *Credentials
	// Intake, if set, receives every upstream device message before its
	// PUBACK. Without it the broker only relays.
	Intake Intake
	// IntakeTimeout bounds one Intake call (default 10 s).
	IntakeTimeout time.Duration
	// Logger receives the broker's and mochi's logs (default: discarded).
	Logger *slog.Logger

	// MaxPacketSize refuses larger packets by closing the connection
	// (default 16 KiB; protocol.MaxPayload is 8 KiB).
	MaxPacketSize uint32
	// MaxInflight bounds the outbound QoS 1/2 messages held per client,
	// awaiting acknowledgement or the client's return (default 1024). Past
	// it mochi drops messages, QoS 1 included (Stats.Dropped).
	MaxInflight uint16
	// ReceiveMaximum bounds a client's unacknowledged inbound QoS 2
	// messages (default 256).
	ReceiveMaximum uint16
	// MaxPendingWrites is each client's outbound queue, in packets (default
	// 1024). Past it mochi drops messages, QoS 1 included (Stats.Dropped).
	// mochi allocates the queue up front for every connection: 20,000
	// devices x 1024 x 8 bytes is about 160 MiB; mochi's own default of 8192
	// would be 1.3 GiB.
	MaxPendingWrites int32
	// SessionExpiry forgets a disconnected persistent session, with its
	// subscriptions and queued messages, after this long (default 7 days;
	// mochi's default is never).
	SessionExpiry time.Duration
	// MessageExpiry, if positive, discards queued and retained messages
	// older than this. Zero (the default) keeps them: mochi applies this one
	// limit to retained messages too, so its own 24 h default would silently
	// delete every device's retained config a day after it was published.
	// Queued messages stay bounded by SessionExpiry and MaxInflight.
	MessageExpiry time.Duration
	// PublishRate and PublishBurst limit each device's publishes with a
	// token bucket (default 50 per second, burst 200). A publish a little
	// over the limit waits for its token (at most a second, on that
	// client's own goroutine); one further over gets no PUBACK, so the
	// device keeps it and retries later. Other clients are unaffected. A
	// negative PublishRate disables the limit.
	PublishRate  float64
	PublishBurst int

	// MaxConnsPerAddr bounds the connections open at once from one remote
	// address (an IPv4 address, or an IPv6 /64), counting those not yet
	// authenticated (default 1024: the keypads of a site behind one NAT
	// share an address). Connections past it are closed at once
	// (Stats.ConnLimited). A negative value disables the limit.
	MaxConnsPerAddr int
	// ConnectTimeout closes a connection that has not delivered its
	// CONNECT packet, TLS handshake included, within this time (default
	// 10 s; Stats.ConnectTimeouts). mochi itself would wait forever.
	ConnectTimeout time.Duration
	// MaxKeepalive caps the keepalive a client may ask for; a client
	// asking for none (0) or more gets this one (MQTT 5 clients are told so
	// in the CONNACK). A client silent for 1.5 times its keepalive is
	// disconnected, so a session whose network vanished does not stay
	// "online" forever (default 10 min).
	MaxKeepalive time.Duration
	// MaxSessionsPerAccount bounds the sessions of one non-device account,
	// connected or persistent and waiting (default 256; a device has one
	// client id, so one session). Past it a connection is refused
	// (Stats.AuthFailures). A negative value disables the limit.
	MaxSessionsPerAccount int
	// MaxSubscriptions bounds the filters one client holds (default 64).
	// Filters past it are refused in the SUBACK (Stats.ACLDenied). A
	// negative value disables the limit.
	MaxSubscriptions int
	// WarnPerSecond bounds the warnings of one kind logged per second, so
	// a hostile client cannot flood the log (default DefaultWarnPerSecond).
	// The counters in Stats count every event.
	WarnPerSecond int

	// Now is the clock, for tests (default time.Now).
	Now func() time.Time
}

// Errors returned by New, Start and Publish.
var (
	// ErrOptions means Options are incomplete or inconsistent.
	ErrOptions = errors.New("invalid broker options")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("broker closed")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("broker already started")
	// ErrTopic means Publish was given a topic outside protocol.Root or with
	// wildcards.
	ErrTopic = errors.New("topic not publishable")
)

// Defaults, see Options.
const (
	DefaultMaxPacketSize    = 16 << 10
	DefaultMaxInflight      = 1024
	DefaultReceiveMaximum   = 256
	DefaultMaxPendingWrites = 1024
	DefaultSessionExpiry    = 7 * 24 * time.Hour
	DefaultIntakeTimeout    = 10 * time.Second
	DefaultPublishRate      = 50
	DefaultPublishBurst     = 200
	DefaultMaxConnsPerAddr  = 1024
	DefaultConnectTimeout   = 10 * time.Second
	DefaultMaxKeepalive     = 10 * time.Minute
	DefaultMaxSessions      = 256
	DefaultMaxSubscriptions = 64
)

// Broker is an MQTT broker enforcing Semko's contract.
type Broker struct {
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	server   *mqtt.Server
	limiter  *rateLimiter
	addrs    *connlimit.Limiter
	logLimit *loglimit.Limiter
	slowLog  *keyLimiter
	count    counters

	// ctx bounds Intake calls; Close cancels it so that calls in progress
	// end (as transient failures: the devices resend) instead of holding
	// shutdown.
	ctx    context.Context
	cancel context.CancelFunc

	onPresence atomic.Pointer[func(clientID string, online bool)]
	closing    atomic.Bool
	// takeovers maps a client ID to the connection a newer one is taking
	// over, while mochi does so (see presenceHook.OnSessionEstablish).
	takeovers sync.Map
	// authed maps a client ID to the credential its session authenticated
	// with (see revoke.go).
	authed   sync.Map
	watchers sync.WaitGroup // watchCredentials

	mu        sync.Mutex // guards started, closed and the addresses
	started   bool
	closed    bool
	tcpAddr   string
	tlsAddr   string
	closeOnce sync.Once
	closeErr  error
}

// New validates opts and builds a broker; Start makes it listen.
func New(opts Options) (*Broker, error) {
	if opts.Credentials == nil {
		return nil, fmt.Errorf("%w: Credentials required (no anonymous access)", ErrOptions)
	}
	if opts.TCPAddr == "" && opts.TLSAddr == "" {
		return nil, fmt.Errorf("%w: no listener: set TCPAddr or TLSAddr", ErrOptions)
	}
	if opts.TLSAddr != "" && opts.TLSConfig == nil {
		return nil, fmt.Errorf("%w: TLSAddr needs TLSConfig", ErrOptions)
	}
	setDefaults(&opts)

	b := &Broker{opts: opts, log: opts.Logger, now: opts.Now}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.limiter = newRateLimiter(opts.PublishRate, opts.PublishBurst, opts.Now)
	b.addrs = connlimit.New(opts.MaxConnsPerAddr)
	b.logLimit = loglimit.New(opts.WarnPerSecond)
	b.slowLog = newKeyLimiter(time.Minute)

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = opts.MaxPacketSize
	caps.MaximumInflight = opts.MaxInflight
	caps.ReceiveMaximum = opts.ReceiveMaximum
	caps.MaximumClientWritesPending = opts.MaxPendingWrites
	caps.MaximumSessionExpiryInterval = uint32(min(opts.SessionExpiry/time.Second, 1<<32-1))
	caps.MaximumMessageExpiryInterval = int64(opts.MessageExpiry / time.Second)
	// Devices have no business with topic aliases; a large alias table per
	// client is memory for nothing.
	caps.TopicAliasMaximum = 0
	b.server = mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       slog.New(&mochiHandler{next: opts.Logger.Handler(), limit: b.logLimit}).With("component", "mochi"),
		InlineClient: true,
	})

	for _, h := range []mqtt.Hook{&authHook{b: b}, &intakeHook{b: b}, &presenceHook{b: b}, &resumeHook{b: b}} {
		if err := b.server.AddHook(h, nil); err != nil {
			return nil, fmt.Errorf("add hook %s: %w", h.ID(), err)
		}
	}
	return b, nil
}

func setDefaults(o *Options) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.IntakeTimeout <= 0 {
		o.IntakeTimeout = DefaultIntakeTimeout
	}
	if o.MaxPacketSize == 0 {
		o.MaxPacketSize = DefaultMaxPacketSize
	}
	if o.MaxInflight == 0 {
		o.MaxInflight = DefaultMaxInflight
	}
	if o.ReceiveMaximum == 0 {
		o.ReceiveMaximum = DefaultReceiveMaximum
	}
	if o.MaxPendingWrites <= 0 {
		o.MaxPendingWrites = DefaultMaxPendingWrites
	}
	if o.SessionExpiry <= 0 {
		o.SessionExpiry = DefaultSessionExpiry
	}
	if o.MessageExpiry < 0 {
		o.MessageExpiry = 0
	}
	if o.PublishRate == 0 {
		o.PublishRate = DefaultPublishRate
	}
	if o.PublishBurst <= 0 {
		o.PublishBurst = DefaultPublishBurst
	}
	if o.MaxConnsPerAddr == 0 {
		o.MaxConnsPerAddr = DefaultMaxConnsPerAddr
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.MaxKeepalive < time.Second || o.MaxKeepalive > 65535*time.Second {
		o.MaxKeepalive = DefaultMaxKeepalive
	}
	if o.MaxSessionsPerAccount == 0 {
		o.MaxSessionsPerAccount = DefaultMaxSessions
	}
	if o.MaxSubscriptions == 0 {
		o.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if o.WarnPerSecond <= 0 {
		o.WarnPerSecond = DefaultWarnPerSecond
	}
}

// OnPresence registers fn to learn when a device's session is established
// (online) and when its connection ends (offline); a connection replaced by
// the same device's newer one is not reported. fn runs on the connection's
// goroutine and must return quickly. Register before Start to miss nothing.
func (b *Broker) OnPresence(fn func(clientID string, online bool)) {
	b.onPresence.Store(&fn)
}

// Start opens the persistence store and the listeners, and returns once they
// accept connections. ctx bounds the start only; Close stops the broker.
func (b *Broker) Start(ctx context.Context) (err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return ErrClosed
	case b.started:
		return ErrStarted
	}
	b.started = true
	defer func() {
		if err != nil {
			b.closeLocked()
		}
	}()

	if b.opts.DataDir != "" {
		store := &pebble.Options{
			Path:    b.opts.DataDir,
			Mode:    pebble.Sync, // a retained config or a session must survive a power cut
			Options: &pebbledb.Options{Logger: pebbleLogger{b.log.With("component", "pebble")}},
		}
		if err := b.server.AddHook(newStoreHook(), store); err != nil {
			return fmt.Errorf("open store %s: %w", b.opts.DataDir, err)
		}
	}

	var lc net.ListenConfig
	if b.opts.TCPAddr != "" {
		ln, err := lc.Listen(ctx, "tcp", b.opts.TCPAddr)
		if err != nil {
			return fmt.Errorf("listen tcp: %w", err)
		}
		b.tcpAddr = ln.Addr().String()
		if err := b.server.AddListener(newGuardListener("tcp", ln, nil, b)); err != nil {
			ln.Close()
			return fmt.Errorf("add tcp listener: %w", err)
		}
	}
	if b.opts.TLSAddr != "" {
		ln, err := lc.Listen(ctx, "tcp", b.opts.TLSAddr)
		if err != nil {
			return fmt.Errorf("listen tls: %w", err)
		}
		b.tlsAddr = ln.Addr().String()
		if err := b.server.AddListener(newGuardListener("tls", ln, b.opts.TLSConfig, b)); err != nil {
			ln.Close()
			return fmt.Errorf("add tls listener: %w", err)
		}
	}
	if err := b.server.Serve(); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	b.watchers.Add(1)
	go b.watchCredentials()
	b.log.Info("broker listening", "tcp", b.tcpAddr, "tls", b.tlsAddr, "persistent", b.opts.DataDir != "")
	return nil
}

// Close disconnects every client, stops the listeners and closes the store.
// Wills of the clients it disconnects are not published: the broker, not
// the devices, is going away. Close is idempotent.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closeLocked()
	return b.closeErr
}

func (b *Broker) closeLocked() {
	b.closeOnce.Do(func() {
		b.closed = true
		b.closing.Store(true)
		b.cancel()
		b.watchers.Wait()
		// mochi's Close waits for every client goroutine, then stops the
		// hooks (closing pebble).
		if err := b.server.Close(); err != nil {
			b.closeErr = fmt.Errorf("close mochi: %w", err)
		}
	})
}

// Addr returns the TCP listener's actual address ("" before Start or when
// disabled).
func (b *Broker) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tcpAddr
}

// TLSAddr returns the TLS listener's actual address.
func (b *Broker) TLSAddr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tlsAddr
}

// Publish sends a message from the broker itself, for the backend's
// downstream messages (retained config, activate, cmd). It bypasses the ACL
// but accepts only concrete topics under protocol.Root. Subscribers receive
// it at min(qos, their subscription's QoS); with a DataDir a retained
// message survives a restart.
func (b *Broker) Publish(topic string, payload []byte, retain bool, qos byte) error {
	if b.closing.Load() {
		return ErrClosed
	}
	if !underRoot(topic) || !mqtt.IsValidFilter(topic, true) || containsWildcard(topic) {
		return fmt.Errorf("%w: %q", ErrTopic, topic)
	}
	if qos > 2 {
		return fmt.Errorf("%w: qos %d", ErrOptions, qos)
	}
	if err := b.server.Publish(topic, payload, retain, qos); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

func containsWildcard(topic string) bool {
	for i := 0; i < len(topic); i++ {
		if topic[i] == '+' || topic[i] == '#' {
			return true
		}
	}
	return false
}

// Stats returns a snapshot of the counters.
func (b *Broker) Stats() Stats {
	info := b.server.Info
	s := Stats{
		ClientsConnected:  atomic.LoadInt64(&info.ClientsConnected),
		Subscriptions:     atomic.LoadInt64(&info.Subscriptions),
		Retained:          int64(b.server.Topics.Retained.Len()),
		Inflight:          atomic.LoadInt64(&info.Inflight),
		MessagesIn:        b.count.messagesIn.Load(),
		IntakeAccepted:    b.count.intakeAccepted.Load(),
		AuthFailures:      b.count.authFailures.Load(),
		ACLDenied:         b.count.aclDenied.Load(),
		IntakeRetries:     b.count.intakeRetries.Load(),
		WillIntakeFails:   b.count.willIntakeFails.Load(),
		RateLimited:       b.count.rateLimited.Load(),
		ConnLimited:       b.count.connLimited.Load(),
		ConnectTimeouts:   b.count.connectTimeouts.Load(),
		BadConnects:       b.count.badConnects.Load(),
		Oversized:         b.count.oversized.Load(),
		IdleTimeouts:      b.count.idleTimeouts.Load(),
		RateDelayed:       b.count.rateDelayed.Load(),
		ResumeRepublished: b.count.resumeRepublished.Load(),
		Revoked:           b.count.revoked.Load(),
		Dropped:           uint64(atomic.LoadInt64(&info.MessagesDropped) + atomic.LoadInt64(&info.InflightDropped)),
		RejectedInvalid:   make(map[string]uint64, len(rejectReasons)),
	}
	for i, r := range rejectReasons {
		s.RejectedInvalid[r] = b.count.rejected[i].Load()
	}
	return s
}

// pebbleLogger moves pebble's chatter to debug level on our logger.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}

// Fatalf must not return (pebble's contract); pebble calls it only on damage
// it cannot survive.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("pebble fatal", "error", msg)
	panic("pebble: " + msg)
}
