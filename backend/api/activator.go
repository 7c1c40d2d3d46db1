package api

import (
	"context"
	"fmt"
	"time"

	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/protocol"
)

// Publisher sends one MQTT message; the embedded broker's Publish fits.
type Publisher interface {
	Publish(topic string, payload []byte, retain bool, qos byte) error
}

// PublishActivator is the backend's Activator: it checks the device against
// the fleet and publishes the activation on the device's activate topic,
// QoS 1, not retained (a retained one would reopen the window on every
// reconnect).
type PublishActivator struct {
	Registry  func() *registry.Registry
	Publisher Publisher
	// Now stamps activations sent without a time, so that an edge that gets
	// one late (after a reconnect) can tell how old it is. Default time.Now.
	Now func() time.Time
	// Sent, when set, hears every activation published (with its time
	// set): the survey ties a QR answer to the operator and service of
	// the moment with it.
	Sent func(device string, a protocol.Activate)
}

// Activate publishes a to device.
func (p PublishActivator) Activate(_ context.Context, device string, a protocol.Activate) error {
	if _, ok := p.Registry().Device(device); !ok {
		return fmt.Errorf("activate %s: %w", device, registry.ErrUnknownDevice)
	}
	if a.Time.IsZero() {
		now := time.Now
		if p.Now != nil {
			now = p.Now
		}
		a.Time = now()
	}
	payload, err := protocol.Encode(a)
	if err != nil {
		return fmt.Errorf("activate %s: %w", device, err)
	}
	if err := p.Publisher.Publish(protocol.DeviceTopic(device, protocol.KindActivate), payload, false, 1); err != nil {
		return fmt.Errorf("activate %s: publish: %w", device, err)
	}
	if p.Sent != nil {
		p.Sent(device, a)
	}
	return nil
}
