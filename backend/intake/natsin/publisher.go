package natsin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/protocol"
)

// Errors of Publish.
var (
	ErrNotConnected   = errors.New("natsin: not connected to the cluster's MQTT front door")
	ErrPublishTimeout = errors.New("natsin: publish not confirmed in time")
	ErrTopic          = errors.New("natsin: topic not publishable")
)

// PublisherOptions configures a Publisher. URLs and Username are required.
type PublisherOptions struct {
	// URLs are the cluster nodes' MQTT listeners; the client fails over
	// between them.
	URLs []string
	// Username and Secret are one of the cluster's auth_users (it bypasses
	// the callout and may publish anywhere).
	Username, Secret string
	// ClientID is Username plus a random suffix unless set: replicas must
	// not share one, or each connection would take over the other's.
	ClientID       string
	PublishTimeout time.Duration
	// OnConnect runs on paho's goroutine after each (re)connection: the
	// moment to resend configs pushed while disconnected.
	OnConnect  func()
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Publisher sends downstream messages as an MQTT client of the cluster, so
// that nats-server applies MQTT semantics (retained configs stored R3 and
// served on every node, QoS 1 delivered with PUBACK and redelivery).
//
// Run owns the reconnecting: each connection is a fresh paho client on the
// next node in turn, after a jittered backoff. paho's own auto-reconnect is
// off because its reconnect goroutine races with Disconnect and with the
// comms workers it replaces (eclipse-paho/paho.mqtt.golang#550, #703; our
// CI's race detector caught it while a node was killed), and it would bring
// every replica back to the same node in the same instant.
type Publisher struct {
	opts      PublisherOptions
	publishes *prometheus.CounterVec

	mu     sync.Mutex
	client paho.Client // nil while not connected
}

// Reconnect backoff: the first retry after half a second to a second, the
// longest wait five seconds (a lost node is usually a restart).
const (
	reconnectMin   = time.Second
	reconnectMax   = 5 * time.Second
	connectTimeout = 10 * time.Second
)

// NewPublisher checks opts; Run connects.
func NewPublisher(opts PublisherOptions) (*Publisher, error) {
	if len(opts.URLs) == 0 || opts.Username == "" {
		return nil, fmt.Errorf("%w: publisher needs URLs and Username", ErrOptions)
	}
	if opts.ClientID == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		opts.ClientID = opts.Username + "-" + hex.EncodeToString(b)
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Publisher{opts: opts, publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "semko_natsin_publishes_total", Help: "Downstream publishes through the NATS cluster's MQTT front door, by result.",
	}, []string{"result"})}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(p.publishes); err != nil {
			return nil, fmt.Errorf("register natsin publisher metrics: %w", err)
		}
	}
	return p, nil
}

// Run connects to one node after another until ctx ends, each connection
// held until it is lost.
func (p *Publisher) Run(ctx context.Context) error {
	var callbacks sync.WaitGroup // OnConnect runs, waited for before returning
	defer callbacks.Wait()
	backoff := reconnectMin
	for turn := 0; ctx.Err() == nil; turn++ {
		url := p.opts.URLs[turn%len(p.opts.URLs)]
		lost := make(chan error, 1)
		cl := p.newClient(url, lost)
		tok := cl.Connect()
		if err := waitToken(ctx, tok, connectTimeout+time.Second); err != nil {
			cl.Disconnect(0)
			if ctx.Err() != nil {
				return nil
			}
			p.opts.Logger.Warn("natsin: publisher connect failed", "url", url, "err", err)
			if !sleepJitter(ctx, backoff) {
				return nil
			}
			backoff = min(backoff*2, reconnectMax)
			continue
		}
		up := time.Now()
		p.setClient(cl)
		p.opts.Logger.Info("natsin: publisher connected", "url", url)
		if p.opts.OnConnect != nil {
			callbacks.Go(p.opts.OnConnect) // it publishes: not on this loop
		}
		select {
		case <-ctx.Done():
			p.setClient(nil)
			cl.Disconnect(250)
			return nil
		case err := <-lost:
			p.setClient(nil)
			p.opts.Logger.Warn("natsin: publisher connection lost", "url", url, "err", err)
		}
		// A connection that stayed up a while resets the backoff; one that
		// dropped at once keeps growing it.
		if time.Since(up) > reconnectMax {
			backoff = reconnectMin
		}
		if !sleepJitter(ctx, backoff) {
			return nil
		}
		backoff = min(backoff*2, reconnectMax)
	}
	return nil
}

func (p *Publisher) newClient(url string, lost chan<- error) paho.Client {
	po := paho.NewClientOptions().AddBroker(url).SetClientID(p.opts.ClientID).
		SetUsername(p.opts.Username).SetPassword(p.opts.Secret).
		SetProtocolVersion(4).SetCleanSession(true).SetOrderMatters(false).
		SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(connectTimeout).SetWriteTimeout(p.opts.PublishTimeout).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	return paho.NewClient(po)
}

func (p *Publisher) setClient(c paho.Client) {
	p.mu.Lock()
	p.client = c
	p.mu.Unlock()
}

func (p *Publisher) current() paho.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.client
}

// Connected reports whether the MQTT connection is up.
func (p *Publisher) Connected() bool {
	c := p.current()
	return c != nil && c.IsConnectionOpen()
}

// waitToken waits for a CONNECT token, ctx or the timeout, whichever
// comes first.
func waitToken(ctx context.Context, tok paho.Token, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("no CONNACK within %v", timeout)
	}
}

// sleepJitter waits between d/2 and d, so that replicas that lost the same
// node do not all come back in the same instant; false when ctx ended.
func sleepJitter(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d/2 + mrand.N(d/2+1))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Publish has the shape of broker.Broker.Publish; QoS 1 waits for the
// cluster's PUBACK (the message is stored in $MQTT_msgs, R3).
func (p *Publisher) Publish(topic string, payload []byte, retain bool, qos byte) error {
	if !strings.HasPrefix(topic, protocol.Root+"/") || strings.ContainsAny(topic, "+#") || qos > 2 {
		return fmt.Errorf("%w: %q qos %d", ErrTopic, topic, qos)
	}
	c := p.current()
	if c == nil || !c.IsConnectionOpen() {
		p.publishes.WithLabelValues("not_connected").Inc()
		return ErrNotConnected
	}
	tok := c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(p.opts.PublishTimeout) {
		p.publishes.WithLabelValues("timeout").Inc()
		return fmt.Errorf("publish %s: %w", topic, ErrPublishTimeout)
	}
	if err := tok.Error(); err != nil {
		p.publishes.WithLabelValues("error").Inc()
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	p.publishes.WithLabelValues("ok").Inc()
	return nil
}
