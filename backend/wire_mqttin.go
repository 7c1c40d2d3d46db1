package backend

import (
	"context"
	"fmt"
	"os"

	"github.com/semko/semko/backend/intake/mqttin"
	"github.com/semko/semko/internal/tlsconf"
)

// externalMQTT is the backend as a client of a broker running alone; in
// that mode App.broker is nil.
type externalMQTT struct {
	consumer *mqttin.Consumer
	stop     context.CancelFunc
	done     chan struct{} // closed when the consumer's Run returned
}

// publisher is where downstream messages (activations, configs) go: the
// embedded broker, or the external one through the consumer's client.
func (a *App) publisher() interface {
	Publish(topic string, payload []byte, retain bool, qos byte) error
} {
	if a.ext.consumer != nil {
		return a.ext.consumer
	}
	return a.broker
}

// newExternalMQTT builds the consumer. The secret comes from
// cfg.MQTT.External.Secret or, failing that, SEMKO_MQTT_SECRET.
func (a *App) newExternalMQTT() error {
	ec := a.cfg.MQTT.External
	secret := ec.Secret
	if secret == "" {
		secret = os.Getenv("SEMKO_MQTT_SECRET")
	}
	tc, err := tlsconf.Client(ec.CAFile, ec.CertFile, ec.KeyFile) // nil: ssl:// verifies against the system roots
	if err != nil {
		return fmt.Errorf("external tls: %w", err)
	}
	a.ext.consumer, err = mqttin.New(mqttin.Options{
		URL: ec.URL, ClientID: ec.ClientID, Username: ec.Username, Secret: secret, TLS: tc,
		SharedGroup: ec.SharedGroup,
		Intake:      a.ingest, // Accept has the shape mqttin.Acceptor asks for
		// Configs pushed while disconnected failed and are retried by the
		// next sync; a new connection is the moment to do it.
		OnConnect:  func() { a.pushConfigs(a.registry.Current()) },
		Logger:     a.log.With("part", "mqttin"),
		Registerer: a.metrics,
	})
	return err
}

// startMQTT starts the embedded broker, or the consumer in the background.
func (a *App) startMQTT(ctx context.Context) error {
	if a.ext.consumer == nil {
		return a.broker.Start(ctx)
	}
	var cctx context.Context
	cctx, a.ext.stop = context.WithCancel(context.WithoutCancel(ctx))
	a.ext.done = make(chan struct{})
	go func() {
		defer close(a.ext.done)
		if err := a.ext.consumer.Run(cctx); err != nil {
			a.log.Error("mqttin stopped", "err", err)
		}
	}()
	return nil
}

// stopMQTT stops taking messages; it returns once no Accept is running,
// so the spool may be closed after it.
func (a *App) stopMQTT() error {
	if a.ext.consumer == nil {
		return a.broker.Close()
	}
	if a.ext.stop != nil {
		a.ext.stop()
		<-a.ext.done
	}
	return nil
}

// mqttReady is nil unless the backend depends on an external broker it is
// not connected to.
func (a *App) mqttReady() error {
	if a.ext.consumer == nil {
		return nil
	}
	return a.ext.consumer.Ready()
}

// MQTTTLSAddr is the embedded broker's MQTT-over-TLS address ("" when it
// has none or the broker is external).
func (a *App) MQTTTLSAddr() string {
	if a.broker == nil {
		return ""
	}
	return a.broker.TLSAddr()
}
