package natsin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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
type Publisher struct {
	opts      PublisherOptions
	client    paho.Client
	publishes *prometheus.CounterVec
}

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
	po := paho.NewClientOptions().SetClientID(opts.ClientID).SetUsername(opts.Username).SetPassword(opts.Secret).
		SetProtocolVersion(4).SetCleanSession(true).SetOrderMatters(false).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second).SetMaxReconnectInterval(5 * time.Second).
		SetConnectTimeout(10 * time.Second).SetWriteTimeout(opts.PublishTimeout).
		SetOnConnectHandler(func(paho.Client) {
			opts.Logger.Info("natsin: publisher connected")
			if opts.OnConnect != nil {
				go opts.OnConnect() // it publishes: not on paho's callback goroutine
			}
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			opts.Logger.Warn("natsin: publisher connection lost", "err", err)
		})
	for _, u := range opts.URLs {
		po.AddBroker(u)
	}
	p.client = paho.NewClient(po)
	return p, nil
}

// Run connects (paho keeps reconnecting across nodes) until ctx ends.
func (p *Publisher) Run(ctx context.Context) error {
	p.client.Connect() // with ConnectRetry the token completes only once connected
	<-ctx.Done()
	p.client.Disconnect(250)
	return nil
}

// Connected reports whether the MQTT connection is up.
func (p *Publisher) Connected() bool { return p.client.IsConnectionOpen() }

// Publish has the shape of broker.Broker.Publish; QoS 1 waits for the
// cluster's PUBACK (the message is stored in $MQTT_msgs, R3).
func (p *Publisher) Publish(topic string, payload []byte, retain bool, qos byte) error {
	if !strings.HasPrefix(topic, protocol.Root+"/") || strings.ContainsAny(topic, "+#") || qos > 2 {
		return fmt.Errorf("%w: %q qos %d", ErrTopic, topic, qos)
	}
	if !p.client.IsConnectionOpen() {
		p.publishes.WithLabelValues("not_connected").Inc()
		return ErrNotConnected
	}
	tok := p.client.Publish(topic, qos, retain, payload)
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
