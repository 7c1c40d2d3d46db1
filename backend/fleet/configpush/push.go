package configpush

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/semko/semko/protocol"
)

// Publisher sends one MQTT message; *broker.Broker implements it.
type Publisher interface {
	Publish(topic string, payload []byte, retain bool, qos byte) error
}

// Pusher publishes each device's desired configuration retained on
// protocol.DeviceTopic(device, protocol.KindConfig), only when its version
// changed since the last successful publish. A device that leaves the
// desired set gets its retained config cleared (an empty retained message),
// which the edge ignores: it keeps running what it has.
type Pusher struct {
	pub Publisher
	log *slog.Logger

	mu        sync.Mutex
	published map[string]string // device -> version last published
}

// NewPusher returns a Pusher that has published nothing yet; log may be nil.
func NewPusher(pub Publisher, log *slog.Logger) *Pusher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pusher{pub: pub, log: log, published: map[string]string{}}
}

// Sync publishes what changed between the last Sync and desired (device ->
// resolved config). A failed publish is not recorded, so the next Sync
// tries again; the errors are returned joined. It reports how many
// messages it published.
func (p *Pusher) Sync(desired map[string]protocol.Config) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	n := 0
	for dev, c := range desired {
		if p.published[dev] == c.Version {
			continue
		}
		payload, err := protocol.Encode(c)
		if err == nil {
			err = p.pub.Publish(protocol.DeviceTopic(dev, protocol.KindConfig), payload, true, 1)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("push config to %s: %w", dev, err))
			continue
		}
		p.published[dev] = c.Version
		n++
		p.log.Info("config pushed", "device", dev, "version", c.Version)
	}
	for dev := range p.published {
		if _, ok := desired[dev]; ok {
			continue
		}
		if err := p.pub.Publish(protocol.DeviceTopic(dev, protocol.KindConfig), nil, true, 1); err != nil {
			errs = append(errs, fmt.Errorf("clear config of %s: %w", dev, err))
			continue
		}
		delete(p.published, dev)
		n++
		p.log.Info("config cleared", "device", dev)
	}
	return n, errors.Join(errs...)
}

// Published returns the version last published to device, "" for none.
func (p *Pusher) Published(device string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.published[device]
}

// Forget makes the next Sync publish every desired config again, for a
// broker that may have lost its retained messages. Devices it no longer
// remembers are not cleared by that Sync.
func (p *Pusher) Forget() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.published)
}

// Suspect marks devices that may hold a retained config from an earlier
// run (the broker keeps retained messages across restarts, the pusher's
// memory does not): the next Sync clears those it is not given a config
// for, and publishes the others as usual.
func (p *Pusher) Suspect(devices []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range devices {
		if _, ok := p.published[d]; !ok {
			p.published[d] = "" // never equal to a version: forces a publish or a clear
		}
	}
}
