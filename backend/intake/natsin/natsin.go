// Package natsin is the backend's intake when the device front door is a
// NATS cluster (deploy/cluster): upstream device messages are read from a
// durable JetStream consumer and handed to ingest, and each is acknowledged
// to the stream only once ingest has it in the spool, as the embedded
// broker sends its PUBACK only after the spool has the message.
//
// Why the consumer reads nats-server's internal stream $MQTT_msgs: a QoS 1
// PUBLISH from a device is PUBACKed once it is stored there (replicated on
// a quorum of nodes), and a durable consumer on it, created before devices
// publish, sees every such message. A user stream capturing the same
// subjects is fed without acknowledgement and loses messages the device
// was already acknowledged for when its leader dies (measured, see
// deploy/cluster/README.md). $MQTT_msgs uses interest retention: a message
// stays until every consumer interested in its subject has acknowledged it,
// so the durable must exist before the first device publishes (Run creates
// it) and must never be deleted while devices publish.
//
// Several backend replicas share one durable (Options.Durable): JetStream
// gives each message to one of them, and one that dies leaves its
// unacknowledged messages to be redelivered to another after AckWait.
// Delivery is at least once; ingest and InfluxDB's point identity (device,
// press time) make the stored result exactly once.
//
// Downstream messages (activations, configs, the time beacon, alert
// notices) go out over MQTT through Publisher, so nats-server stores
// retained ones and delivers QoS 1 ones to a device on whatever node it
// is connected to.
package natsin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/intake/mqttin"
	"github.com/semko/semko/internal/textcut"
	"github.com/semko/semko/protocol"
)

// Stream is nats-server's stream of every QoS 1 and 2 MQTT message of an
// account; StreamPrefix prefixes the NATS subject of the MQTT topic.
const (
	Stream       = "$MQTT_msgs"
	StreamPrefix = "$MQTT.msgs."
)

// Defaults for Options.
const (
	DefaultDurable       = "semko-backend"
	DefaultWorkers       = 256
	DefaultMaxAckPending = 1024
	DefaultAckWait       = 10 * time.Second
	DefaultAcceptTimeout = 10 * time.Second
	DefaultNakDelay      = time.Second
	DefaultReplicas      = 3
)

// ErrOptions means Options are incomplete.
var ErrOptions = errors.New("invalid natsin options")

// Options configures a Consumer. Conn and Intake are required.
type Options struct {
	// Conn is the backend's NATS connection (one of the cluster's
	// auth_users); its owner closes it after Run returns.
	Conn *nats.Conn
	// Intake receives every upstream message.
	Intake mqttin.Acceptor
	// Durable names the consumer the replicas share.
	Durable string
	// Workers call Intake concurrently; MaxAckPending bounds the messages
	// delivered and not yet acknowledged (the queue in this process is
	// bounded by it too). Each accept waits for the spool's fsync, and the
	// spool writes the records of all waiting accepts with one fsync, so
	// the workers are the size of a group commit: with 8, two replicas
	// landed 567 votes/s where the embedded broker's thousands of waiting
	// connections landed 7,310 (docs/scaling.md). Workers are goroutines
	// holding one message each; MaxAckPending bounds them anyway.
	Workers, MaxAckPending int
	// AckWait is how long JetStream waits for an ack before redelivering
	// (to any replica): a dead replica's messages come back after it.
	AckWait time.Duration
	// AcceptTimeout bounds one Intake call; NakDelay is the redelivery
	// delay of a transient failure (spool full, shutting down).
	AcceptTimeout, NakDelay time.Duration
	// Replicas of the stream and the durable: the cluster's size.
	Replicas int

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (o *Options) setDefaults() error {
	switch {
	case o.Conn == nil:
		return fmt.Errorf("%w: Conn is required", ErrOptions)
	case o.Intake == nil:
		return fmt.Errorf("%w: Intake is required", ErrOptions)
	case strings.ContainsAny(o.Durable, ".*> \t"):
		return fmt.Errorf("%w: Durable %q must be one NATS token", ErrOptions, o.Durable)
	}
	if o.Durable == "" {
		o.Durable = DefaultDurable
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.MaxAckPending <= 0 {
		o.MaxAckPending = DefaultMaxAckPending
	}
	o.Workers = min(o.Workers, o.MaxAckPending) // more could never all be busy
	if o.AckWait <= 0 {
		o.AckWait = DefaultAckWait
	}
	if o.AcceptTimeout <= 0 {
		o.AcceptTimeout = DefaultAcceptTimeout
	}
	if o.NakDelay <= 0 {
		o.NakDelay = DefaultNakDelay
	}
	if o.Replicas <= 0 {
		o.Replicas = DefaultReplicas
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Consumer reads the upstream subjects of $MQTT_msgs. Run owns its
// subscription and workers.
type Consumer struct {
	opts Options
	log  *slog.Logger
	m    *metrics
	js   jetstream.JetStream

	mu      sync.Mutex
	running bool
	ready   bool
}

// New checks opts.
func New(opts Options) (*Consumer, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(opts.Conn)
	if err != nil {
		return nil, fmt.Errorf("natsin: jetstream: %w", err)
	}
	return &Consumer{opts: opts, log: opts.Logger, m: m, js: js}, nil
}

// Filters are the durable's filter subjects: every upstream kind of every
// device.
func Filters() []string {
	var out []string
	for _, k := range protocol.Kinds() {
		if k.Upstream() {
			out = append(out, StreamPrefix+Subject(protocol.UpstreamFilter(k)))
		}
	}
	return out
}

// Subject maps an MQTT topic or filter to its NATS subject ('/' -> '.',
// '+' -> '*', a trailing '#' -> '>').
func Subject(topic string) string {
	s := strings.ReplaceAll(topic, "/", ".")
	s = strings.ReplaceAll(s, "+", "*")
	if strings.HasSuffix(s, "#") {
		s = s[:len(s)-1] + ">"
	}
	return s
}

// Topic maps a $MQTT_msgs subject back to the MQTT topic. Device ids never
// contain '.' on the cluster (nats-server refuses such MQTT client ids and
// natsauth such accounts), so the mapping is exact.
func Topic(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, StreamPrefix)
	if !ok || rest == "" {
		return "", false
	}
	return strings.ReplaceAll(rest, ".", "/"), true
}

// Ready is nil once the durable exists and messages are being consumed.
func (c *Consumer) Ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready {
		return errors.New("natsin: not consuming from the NATS cluster")
	}
	if !c.opts.Conn.IsConnected() {
		return errors.New("natsin: not connected to the NATS cluster")
	}
	return nil
}

func (c *Consumer) setReady(v bool) {
	c.mu.Lock()
	c.ready = v
	c.mu.Unlock()
	if v {
		c.m.consuming.Set(1)
	} else {
		c.m.consuming.Set(0)
	}
}

// Run sets up the stream and durable (retrying until the cluster answers),
// consumes until ctx ends, and returns once no Intake call is running.
// Messages in flight are not acknowledged: they come again after AckWait.
func (c *Consumer) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return errors.New("natsin: already running")
	}
	c.running = true
	c.mu.Unlock()
	defer c.setReady(false)

	queue := make(chan jetstream.Msg, c.opts.MaxAckPending)
	var wg sync.WaitGroup
	defer wg.Wait()
	for range c.opts.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-queue:
					c.m.queued.Dec()
					c.handle(ctx, m)
				}
			}
		})
	}

	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		err := c.consume(ctx, queue)
		c.setReady(false)
		if ctx.Err() != nil {
			break
		}
		c.log.Warn("natsin: consuming stopped, setting up again", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	return nil
}

// consume ensures the stream and durable, then feeds queue until ctx ends
// or the consumer fails for good (deleted, stream gone).
func (c *Consumer) consume(ctx context.Context, queue chan<- jetstream.Msg) error {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	cons, err := c.ensure(sctx)
	cancel()
	if err != nil {
		return err
	}
	failed := make(chan error, 1)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		c.m.received.Inc()
		select {
		case queue <- m: // bounded: MaxAckPending messages at most are delivered unacked
			c.m.queued.Inc()
		case <-ctx.Done():
		}
	},
		jetstream.PullMaxMessages(min(c.opts.MaxAckPending, 500)),
		// Short pulls: their idle heartbeat (half the expiry) is how a pull
		// notices that the node serving it died; with the default 30 s a
		// replica would sit idle that long after a node's death.
		jetstream.PullExpiry(4*time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			c.log.Debug("natsin: consume", "err", err)
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				select {
				case failed <- err:
				default:
				}
			}
		}))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer cc.Stop()
	c.setReady(true)
	c.log.Info("natsin: consuming", "stream", Stream, "durable", c.opts.Durable)
	select {
	case <-ctx.Done():
		return nil
	case err := <-failed:
		return err
	}
}

// ensure creates $MQTT_msgs with nats-server's own settings if no MQTT
// client has made the server create it yet, and the durable if it does not
// exist. Replicas running the same version ask for the same durable, so
// CreateOrUpdate is idempotent among them.
func (c *Consumer) ensure(ctx context.Context) (jetstream.Consumer, error) {
	stream, err := c.js.Stream(ctx, Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		stream, err = c.js.CreateStream(ctx, jetstream.StreamConfig{
			Name: Stream, Subjects: []string{StreamPrefix + ">"},
			Storage: jetstream.FileStorage, Retention: jetstream.InterestPolicy, Replicas: c.opts.Replicas,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			stream, err = c.js.Stream(ctx, Stream)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", Stream, err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:        c.opts.Durable,
		Description:    "Semko backend replicas: upstream device messages (see backend/intake/natsin)",
		FilterSubjects: Filters(),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.opts.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  c.opts.MaxAckPending,
		Replicas:       c.opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("durable %s: %w", c.opts.Durable, err)
	}
	return cons, nil
}

// handle gives one message to Intake and acks, terminates or naks it.
func (c *Consumer) handle(ctx context.Context, m jetstream.Msg) {
	received := time.Now()
	if md, err := m.Metadata(); err == nil {
		// When the cluster stored it: a redelivery keeps the first
		// receipt time, as the embedded broker's would.
		received = md.Timestamp
	}
	topic, ok := Topic(m.Subject())
	var err error
	var t protocol.Topic
	if !ok {
		err = fmt.Errorf("%w: subject %q", protocol.ErrInvalid, m.Subject())
	} else if t, err = protocol.ParseTopic(topic); err == nil {
		actx, cancel := context.WithTimeout(ctx, c.opts.AcceptTimeout)
		err = c.opts.Intake.Accept(actx, t, m.Data(), received)
		cancel()
	}
	switch {
	case err == nil:
		if aerr := m.Ack(); aerr != nil {
			// Redelivered after AckWait; ingest de-duplicates.
			c.log.Debug("natsin: ack not sent", "err", aerr)
		}
		c.m.results.WithLabelValues("accepted").Inc()
	case protocol.Permanent(err):
		// Bad input never gets better: stop redelivering it.
		_ = m.Term()
		c.m.results.WithLabelValues("rejected").Inc()
		c.log.Debug("natsin: message rejected", "subject", textcut.Trunc(m.Subject(), 120), "err", err)
	default:
		_ = m.NakWithDelay(c.opts.NakDelay)
		c.m.results.WithLabelValues("transient").Inc()
		if ctx.Err() == nil {
			c.log.Warn("natsin: message not stored, left for redelivery", "subject", textcut.Trunc(m.Subject(), 120), "err", err)
		}
	}
}
