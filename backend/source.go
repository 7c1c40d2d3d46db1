package backend

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/semko/semko/backend/intake/mqttin"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/internal/tlsconf"
)

// source is where messages come from and where downstream messages
// (activations, configs, notices) go: the embedded broker (the default)
// or, with mqtt.external.url set, an external broker through mqttin. It is
// the one place that knows which.
type source interface {
	Part
	Publish(topic string, payload []byte, retain bool, qos byte) error
	// ready is nil unless the backend depends on an external broker it is
	// not connected to.
	ready() error
	addr() string
	tlsAddr() string
}

// newSource builds the configured source; intake takes every message
// (ingest.Accept), onConnect runs on each new connection to an external
// broker.
func (a *App) newSource(intake mqttin.Acceptor, onConnect func()) (source, error) {
	if a.cfg.MQTT.Cluster.enabled() {
		return a.newCluster(intake, onConnect)
	}
	if a.cfg.MQTT.External.URL != "" {
		return a.newExternal(intake, onConnect)
	}
	return a.newEmbedded(intake)
}

// embedded runs the broker inside the backend process.
type embedded struct {
	*broker.Broker
	started chan struct{}
}

func (a *App) newEmbedded(intake mqttin.Acceptor) (*embedded, error) {
	cfg := a.cfg
	bopts := broker.Options{
		TCPAddr:     cfg.MQTT.Addr,
		DataDir:     filepath.Join(cfg.DataDir, "broker"),
		Credentials: a.creds,
		Intake: broker.IntakeFunc(func(ctx context.Context, m broker.Message) error {
			return intake.Accept(ctx, m.Topic, m.Payload, m.Received)
		}),
		Logger:           a.log.With("part", "broker"),
		MaxInflight:      cfg.MQTT.MaxInflight,
		MaxPendingWrites: cfg.MQTT.MaxPendingWrites,
		PublishRate:      cfg.MQTT.PublishRate,
		PublishBurst:     cfg.MQTT.PublishBurst,
		MaxConnsPerAddr:  cfg.MQTT.MaxConnsPerAddr,
		ConnectTimeout:   cfg.MQTT.ConnectTimeout,
		// Bounds on what non-device accounts may hold (issue 15).
		MaxSessionsPerAccount: cfg.MQTT.MaxSessionsPerAccount,
		MaxSubscriptions:      cfg.MQTT.MaxSubscriptions,
	}
	if cfg.MQTT.TLSAddr != "" {
		tc, err := tlsconf.Server(cfg.MQTT.CertFile, cfg.MQTT.KeyFile, cfg.MQTT.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls: %w", err)
		}
		bopts.TLSAddr, bopts.TLSConfig = cfg.MQTT.TLSAddr, tc
	}
	b, err := broker.New(bopts)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	a.metrics.MustRegister(newBrokerCollector(b))
	return &embedded{Broker: b, started: make(chan struct{})}, nil
}

// Run listens until ctx ends; on return no Accept is running, so the spool
// may be closed after it.
func (e *embedded) Run(ctx context.Context) error {
	if err := e.Start(ctx); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	close(e.started)
	<-ctx.Done()
	return e.Close()
}

func (e *embedded) Started() <-chan struct{} { return e.started }
func (e *embedded) ready() error             { return nil }
func (e *embedded) addr() string             { return e.Addr() }
func (e *embedded) tlsAddr() string          { return e.TLSAddr() }

// external is the backend as a client of a broker running alone.
type external struct {
	*mqttin.Consumer
	url string
}

// newExternal builds the consumer. The secret comes from
// cfg.MQTT.External.Secret or, failing that, SEMKO_MQTT_SECRET.
func (a *App) newExternal(intake mqttin.Acceptor, onConnect func()) (*external, error) {
	ec := a.cfg.MQTT.External
	secret := ec.Secret
	if secret == "" {
		secret = os.Getenv("SEMKO_MQTT_SECRET")
	}
	tc, err := tlsconf.Client(ec.CAFile, ec.CertFile, ec.KeyFile) // nil: ssl:// verifies against the system roots
	if err != nil {
		return nil, fmt.Errorf("external tls: %w", err)
	}
	c, err := mqttin.New(mqttin.Options{
		URL: ec.URL, ClientID: ec.ClientID, Username: ec.Username, Secret: secret, TLS: tc,
		SharedGroup: ec.SharedGroup,
		Intake:      intake,
		OnConnect:   onConnect,
		Logger:      a.log.With("part", "mqttin"),
		Registerer:  a.metrics,
	})
	if err != nil {
		return nil, err
	}
	return &external{Consumer: c, url: ec.URL}, nil
}

// Run (the consumer's) connects, consumes and reconnects until ctx ends;
// on return no Accept is running.
func (e *external) ready() error    { return e.Ready() }
func (e *external) addr() string    { return e.url }
func (e *external) tlsAddr() string { return "" }
