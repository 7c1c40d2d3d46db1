// Package mqttin is the backend's intake when the broker runs on its own
// (cmd/semko-broker, or a clustered broker such as EMQX): a paho client
// subscribes to every upstream kind with a persistent session and hands
// each message to ingest, acknowledging it only once ingest has stored it
// or refused it for good.
//
// Why the acknowledgement waits: with SetAutoAckDisabled the broker keeps a
// message in the backend's session until the PUBACK arrives, and resends it
// when the backend reconnects. So a message is acknowledged when
// Accept returns nil (it is in the spool) or a permanent error (bad input:
// acknowledged and counted, never redelivered forever). On a transient
// error (spool full, shutting down) it is left unacknowledged; since an
// MQTT 3.1.1 broker resends only on a new connection, the consumer drops
// and reopens its connection after MaxTransientFailures such failures, with
// a jittered backoff.
//
// Redelivery is normal, not an error: an ack sent just before a connection
// drops is lost, and the message comes again. Ingest is idempotent (device
// sequence numbers, press timestamps), so it is stored once.
//
// Downstream messages (activations, configs, commands) go out through the
// same client: Consumer.Publish has the shape of broker.Broker.Publish.
package mqttin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/internal/textcut"
	"github.com/semko/semko/protocol"
)

// Acceptor takes one upstream message; ingest.Ingest.Accept fits. Its
// error follows protocol.Permanent: permanent means bad input, anything
// else transient.
type Acceptor interface {
	Accept(ctx context.Context, t protocol.Topic, payload []byte, received time.Time) error
}

// AcceptFunc adapts a function to Acceptor.
type AcceptFunc func(ctx context.Context, t protocol.Topic, payload []byte, received time.Time) error

// Accept calls f.
func (f AcceptFunc) Accept(ctx context.Context, t protocol.Topic, payload []byte, received time.Time) error {
	return f(ctx, t, payload, received)
}

// Errors.
var (
	// ErrOptions means Options are incomplete or inconsistent.
	ErrOptions = errors.New("invalid mqttin options")
	// ErrNotConnected is returned by Publish while no connection is up;
	// the caller may retry.
	ErrNotConnected = errors.New("mqttin: not connected to the broker")
	// ErrPublishTimeout is returned by Publish when the broker did not
	// confirm in time; the message may or may not have arrived.
	ErrPublishTimeout = errors.New("mqttin: publish not confirmed in time")
	// ErrTopic is returned by Publish for a topic outside protocol.Root or
	// with wildcards.
	ErrTopic = errors.New("mqttin: topic not publishable")
	// ErrRunning is returned by a second concurrent Run.
	ErrRunning = errors.New("mqttin: already running")
)

// Defaults for Options.
const (
	DefaultWorkers              = 8
	DefaultQueueSize            = 256
	DefaultMaxTransientFailures = 16
	DefaultRedeliverAfter       = 5 * time.Second
	DefaultReconnectMin         = 500 * time.Millisecond
	DefaultReconnectMax         = 30 * time.Second
	DefaultAcceptTimeout        = 10 * time.Second
	DefaultPublishTimeout       = 10 * time.Second
	DefaultConnectTimeout       = 10 * time.Second
	DefaultKeepAlive            = 30 * time.Second
)

// Options configures a Consumer. URL, Username and Intake are required.
type Options struct {
	// URL of the broker: tcp://host:1883 or ssl://host:8883.
	URL string
	// ClientID is fixed so that the broker keeps the backend's session
	// (subscriptions and unacknowledged messages) across reconnects.
	// Default: the Username. Semko's broker lets an account use only its
	// username, or its username and a "-suffix", as a client id, so that
	// nobody else can take this session over. Two replicas sharing the
	// stream need different ids ("semko-backend-1", "semko-backend-2") and
	// a SharedGroup.
	ClientID string
	Username string
	Secret   string // never logged
	// TLS configures ssl:// connections: RootCAs for a private CA,
	// Certificates for mutual TLS.
	TLS *tls.Config
	// SharedGroup, if set, subscribes as $share/<group>/<filter>, so that
	// several backends split the stream (MQTT 5-style shared
	// subscriptions; mochi, EMQX, HiveMQ and VerneMQ serve them to 3.1.1
	// clients). The broker remembers a persistent session's
	// subscriptions: change ClientID when changing the group.
	SharedGroup string

	// Intake receives every message. Required.
	Intake Acceptor
	// Workers call Intake concurrently (default DefaultWorkers); at most
	// QueueSize further messages wait for them (default DefaultQueueSize).
	// Past that, delivery blocks: the broker's inflight window is the
	// backpressure.
	Workers, QueueSize int
	// MaxTransientFailures unacknowledged transient failures on one
	// connection force a reconnect, so the broker resends them (default
	// DefaultMaxTransientFailures). So does the first one once it is
	// RedeliverAfter old (default DefaultRedeliverAfter), so that a few
	// failures at the end of a burst are not left waiting for the next
	// reconnect.
	MaxTransientFailures int
	RedeliverAfter       time.Duration
	// ReconnectMin and ReconnectMax bound the jittered exponential backoff
	// between connection attempts.
	ReconnectMin, ReconnectMax time.Duration
	// AcceptTimeout bounds one Intake call; PublishTimeout one Publish;
	// ConnectTimeout one connection attempt.
	AcceptTimeout, PublishTimeout, ConnectTimeout time.Duration
	// KeepAlive is the MQTT keep-alive (default DefaultKeepAlive).
	KeepAlive time.Duration

	// OnConnect, if set, runs after each connection is up and subscribed,
	// on Run's goroutine (it may Publish); Run serves the connection once
	// it returns.
	OnConnect func()

	// Logger; default discards. Registerer receives semko_mqttin_*
	// metrics; nil registers none. Now stamps receipt (default time.Now).
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

func (o *Options) setDefaults() error {
	switch {
	case o.URL == "":
		return fmt.Errorf("%w: URL is required", ErrOptions)
	case !strings.HasPrefix(o.URL, "tcp://") && !strings.HasPrefix(o.URL, "ssl://") &&
		!strings.HasPrefix(o.URL, "tls://") && !strings.HasPrefix(o.URL, "mqtt://") && !strings.HasPrefix(o.URL, "mqtts://"):
		return fmt.Errorf("%w: URL %q: scheme must be tcp:// or ssl://", ErrOptions, o.URL)
	case o.Username == "":
		return fmt.Errorf("%w: Username is required (the broker allows no anonymous access)", ErrOptions)
	case o.Intake == nil:
		return fmt.Errorf("%w: Intake is required", ErrOptions)
	case strings.ContainsAny(o.SharedGroup, "/+#"):
		return fmt.Errorf("%w: SharedGroup %q must be one topic level", ErrOptions, o.SharedGroup)
	case o.Workers < 0 || o.QueueSize < 0 || o.MaxTransientFailures < 0:
		return fmt.Errorf("%w: negative size", ErrOptions)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.RedeliverAfter, DefaultRedeliverAfter)
	def(&o.ReconnectMin, DefaultReconnectMin)
	def(&o.ReconnectMax, DefaultReconnectMax)
	def(&o.AcceptTimeout, DefaultAcceptTimeout)
	def(&o.PublishTimeout, DefaultPublishTimeout)
	def(&o.ConnectTimeout, DefaultConnectTimeout)
	def(&o.KeepAlive, DefaultKeepAlive)
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = o.ReconnectMin
	}
	if o.ClientID == "" {
		o.ClientID = o.Username
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.MaxTransientFailures == 0 {
		o.MaxTransientFailures = DefaultMaxTransientFailures
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Stats is a snapshot of the consumer's counters.
type Stats struct {
	Connected        bool
	Connects         uint64 // connections established
	ForcedReconnects uint64 // connections dropped on purpose to get redeliveries
	Received         uint64 // messages delivered by the broker (redeliveries included)
	Accepted         uint64 // stored by ingest and acknowledged
	Rejected         uint64 // bad input: acknowledged and discarded
	Transient        uint64 // left unacknowledged for redelivery
	Queued           int    // waiting for a worker now
}

// Consumer is the backend's MQTT client. Run owns its connection and
// workers; Publish may be called from any goroutine.
type Consumer struct {
	opts    Options
	log     *slog.Logger
	m       *metrics
	filters map[string]byte
	queue   chan delivery

	current atomic.Pointer[conn]

	connects, forced                        atomic.Uint64
	received, accepted, rejected, transient atomic.Uint64

	runMu sync.Mutex // one Run at a time
}

// delivery is one message waiting for a worker, with the connection it
// came on: an ack only means something on that connection.
type delivery struct {
	msg      paho.Message
	conn     *conn
	received time.Time
}

// conn is one MQTT connection's lifetime.
type conn struct {
	client    paho.Client
	done      chan struct{} // closed when the connection is being torn down
	closeOnce sync.Once
	lost      chan error    // connection-lost reports, buffer 1
	force     chan struct{} // too many transient failures, buffer 1
	failures  atomic.Int32
}

func (cn *conn) close() { cn.closeOnce.Do(func() { close(cn.done) }) }

// forceReconnect asks serve to drop this connection; once is enough, and
// a request for a connection already gone is ignored.
func (cn *conn) forceReconnect() {
	select {
	case cn.force <- struct{}{}:
	default:
	}
}

// New checks opts and builds a Consumer; Run connects.
func New(opts Options) (*Consumer, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	c := &Consumer{
		opts:    opts,
		log:     opts.Logger,
		m:       m,
		filters: make(map[string]byte),
		queue:   make(chan delivery, opts.QueueSize),
	}
	for _, k := range protocol.Kinds() {
		if !k.Upstream() {
			continue
		}
		f := protocol.UpstreamFilter(k)
		if opts.SharedGroup != "" {
			f = "$share/" + opts.SharedGroup + "/" + f
		}
		c.filters[f] = 1
	}
	m.queued.Set(0)
	return c, nil
}

// Filters returns the subscription filters, each at QoS 1.
func (c *Consumer) Filters() []string {
	out := make([]string, 0, len(c.filters))
	for f := range c.filters {
		out = append(out, f)
	}
	return out
}

// Run connects, consumes and reconnects until ctx is done. Messages still
// queued or in Intake when it stops are not acknowledged: the broker keeps
// them for the next start. It returns nil once ctx is done and every
// worker has returned.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.runMu.TryLock() {
		return ErrRunning
	}
	defer c.runMu.Unlock()

	var wg sync.WaitGroup
	defer wg.Wait()
	for range c.opts.Workers {
		wg.Go(func() { c.work(ctx) })
	}

	backoff := c.opts.ReconnectMin
	for {
		cn, err := c.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Warn("mqttin: connect failed", "url", c.opts.URL, "err", err, "retry_in", backoff)
		} else {
			up := time.Now()
			if c.opts.OnConnect != nil {
				c.opts.OnConnect()
			}
			c.serve(ctx, cn)
			if ctx.Err() != nil {
				return nil
			}
			// A connection that stayed up a while resets the backoff; one
			// that dropped at once keeps growing it.
			if time.Since(up) > c.opts.ReconnectMax {
				backoff = c.opts.ReconnectMin
			}
		}
		if !sleepJitter(ctx, backoff) {
			return nil
		}
		backoff = min(backoff*2, c.opts.ReconnectMax)
	}
}

// sleepJitter waits between d/2 and d, so that backends and devices that
// lost the same broker do not all come back in the same instant.
func sleepJitter(ctx context.Context, d time.Duration) bool {
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// connect opens one connection and subscribes if the broker holds no
// session for us.
func (c *Consumer) connect(ctx context.Context) (*conn, error) {
	cn := &conn{done: make(chan struct{}), lost: make(chan error, 1), force: make(chan struct{}, 1)}
	po := paho.NewClientOptions().
		AddBroker(c.opts.URL).
		SetClientID(c.opts.ClientID).
		SetUsername(c.opts.Username).
		SetPassword(c.opts.Secret).
		SetProtocolVersion(4). // no silent fallback to 3.1 on a refused login
		SetCleanSession(false).
		SetAutoAckDisabled(true).
		SetOrderMatters(false).
		SetAutoReconnect(false). // Run owns reconnection, with jitter
		SetConnectRetry(false).
		SetKeepAlive(c.opts.KeepAlive).
		SetConnectTimeout(c.opts.ConnectTimeout).
		SetWriteTimeout(c.opts.PublishTimeout).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { c.deliver(cn, m) }).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case cn.lost <- err:
			default:
			}
		})
	if c.opts.TLS != nil {
		po.SetTLSConfig(c.opts.TLS)
	}
	cn.client = paho.NewClient(po)

	tok := cn.client.Connect()
	if err := waitToken(ctx, tok, c.opts.ConnectTimeout+time.Second); err != nil {
		cn.close()
		cn.client.Disconnect(0)
		return nil, fmt.Errorf("connect %s: %w", c.opts.URL, err)
	}
	present := tok.(*paho.ConnectToken).SessionPresent()
	// The broker remembers a persistent session's subscriptions;
	// subscribing again would replay every retained status message (a
	// death would be stored again at a new time). Subscribe only when the
	// broker has no session for us: first start, expiry, a broker without
	// persistence.
	if !present {
		if err := waitToken(ctx, cn.client.SubscribeMultiple(c.filters, nil), c.opts.ConnectTimeout); err != nil {
			cn.close()
			cn.client.Disconnect(0)
			return nil, fmt.Errorf("subscribe: %w", err)
		}
	}
	c.connects.Add(1)
	c.m.connects.Inc()
	c.m.connected.Set(1)
	c.current.Store(cn)
	c.log.Info("mqttin: connected", "url", c.opts.URL, "client_id", c.opts.ClientID, "session_present", present)
	return cn, nil
}

// serve waits for the connection to end: lost, forced, or ctx done.
func (c *Consumer) serve(ctx context.Context, cn *conn) {
	defer func() {
		c.current.CompareAndSwap(cn, nil)
		c.m.connected.Set(0)
		cn.close()
		cn.client.Disconnect(250)
	}()
	select {
	case <-ctx.Done():
		c.log.Info("mqttin: disconnecting")
	case err := <-cn.lost:
		c.m.lost.Inc()
		c.log.Warn("mqttin: connection lost", "err", err)
	case <-cn.force:
		c.forced.Add(1)
		c.m.forced.Inc()
		c.log.Warn("mqttin: reconnecting so the broker resends unacknowledged messages",
			"transient_failures", cn.failures.Load())
	}
}

// deliver runs on paho's goroutine for one message (order does not
// matter, so paho gives each message its own). It blocks while the queue
// is full: the broker stops sending once the session's inflight window is
// used up, so waiting is the backpressure, and the number of waiting
// goroutines is bounded by that window.
func (c *Consumer) deliver(cn *conn, m paho.Message) {
	c.received.Add(1)
	c.m.received.Inc()
	d := delivery{msg: m, conn: cn, received: c.opts.Now()}
	select {
	case c.queue <- d:
		c.m.queued.Inc()
	case <-cn.done:
		// The connection is going away; without an ack the broker sends
		// the message again on the next one.
	}
}

// work hands queued messages to Intake until ctx is done.
func (c *Consumer) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-c.queue:
			c.m.queued.Dec()
			c.handle(ctx, d)
		}
	}
}

func (c *Consumer) handle(ctx context.Context, d delivery) {
	select {
	case <-d.conn.done:
		return // its connection is gone: an ack would be discarded, the broker resends
	default:
	}
	t, err := protocol.ParseTopic(d.msg.Topic())
	if err == nil {
		actx, cancel := context.WithTimeout(ctx, c.opts.AcceptTimeout)
		err = c.opts.Intake.Accept(actx, t, d.msg.Payload(), d.received)
		cancel()
	}
	switch {
	case err == nil:
		d.msg.Ack()
		c.accepted.Add(1)
		c.m.results.WithLabelValues("accepted").Inc()
	case protocol.Permanent(err):
		// Bad input never gets better: acknowledge it so the broker does
		// not send it forever. Ingest has logged and counted the reason.
		d.msg.Ack()
		c.rejected.Add(1)
		c.m.results.WithLabelValues("rejected").Inc()
		c.log.Debug("mqttin: message rejected", "topic", textcut.Trunc(d.msg.Topic(), 120), "err", err)
	default:
		c.transient.Add(1)
		c.m.results.WithLabelValues("transient").Inc()
		n := d.conn.failures.Add(1)
		if ctx.Err() == nil {
			c.log.Warn("mqttin: message not stored, left for redelivery", "topic", textcut.Trunc(d.msg.Topic(), 120), "err", err)
		}
		switch {
		case int(n) >= c.opts.MaxTransientFailures:
			d.conn.forceReconnect()
		case n == 1:
			time.AfterFunc(c.opts.RedeliverAfter, d.conn.forceReconnect)
		}
	}
}

// Publish sends a downstream message through the consumer's connection
// and waits for the broker's confirmation (QoS 1 and 2). It fits
// api.Publisher, like broker.Broker.Publish.
func (c *Consumer) Publish(topic string, payload []byte, retain bool, qos byte) error {
	if !strings.HasPrefix(topic, protocol.Root+"/") || strings.ContainsAny(topic, "+#") {
		return fmt.Errorf("%w: %q", ErrTopic, topic)
	}
	if qos > 2 {
		return fmt.Errorf("%w: qos %d", ErrTopic, qos)
	}
	cn := c.current.Load()
	if cn == nil {
		c.m.publishes.WithLabelValues("not_connected").Inc()
		return ErrNotConnected
	}
	tok := cn.client.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(c.opts.PublishTimeout) {
		c.m.publishes.WithLabelValues("timeout").Inc()
		return fmt.Errorf("publish %s: %w", topic, ErrPublishTimeout)
	}
	if err := tok.Error(); err != nil {
		c.m.publishes.WithLabelValues("error").Inc()
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	c.m.publishes.WithLabelValues("ok").Inc()
	return nil
}

// Connected reports whether a connection is up now.
func (c *Consumer) Connected() bool { return c.current.Load() != nil }

// Ready is nil while connected; the backend's readiness uses it.
func (c *Consumer) Ready() error {
	if !c.Connected() {
		return fmt.Errorf("mqtt broker %s: %w", c.opts.URL, ErrNotConnected)
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (c *Consumer) Stats() Stats {
	return Stats{
		Connected:        c.Connected(),
		Connects:         c.connects.Load(),
		ForcedReconnects: c.forced.Load(),
		Received:         c.received.Load(),
		Accepted:         c.accepted.Load(),
		Rejected:         c.rejected.Load(),
		Transient:        c.transient.Load(),
		Queued:           len(c.queue),
	}
}

// waitToken waits for a paho token, ctx or a timeout, whichever first.
func waitToken(ctx context.Context, tok paho.Token, limit time.Duration) error {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errors.New("timed out")
	}
}
