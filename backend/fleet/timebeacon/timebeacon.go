// Package timebeacon publishes the backend's time for the edges: a
// protocol.TimeBeacon on protocol.TimeTopic every few seconds. An edge
// stamps votes on the time it learns here (protocol/README.md section 4)
// and holds the presses of a new boot until its first beacon, so whatever
// runs a broker for edges runs this beside it.
package timebeacon

import (
	"context"
	"log/slog"
	"time"

	"github.com/semko/semko/protocol"
)

// DefaultInterval is how often the beacon goes out by default; it is also
// the longest a freshly booted, connected edge waits for its reference.
const DefaultInterval = 10 * time.Second

// Publisher is the broker (embedded) or an MQTT client (external broker).
type Publisher interface {
	Publish(topic string, payload []byte, retain bool, qos byte) error
}

// Run publishes a beacon at once and then every interval until ctx is
// done. QoS 0 and not retained: a beacon delivered late or twice would be
// a stale time, and the next one is seconds away. A failed publish is
// logged once until one succeeds again.
func Run(ctx context.Context, pub Publisher, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	failing := false
	for {
		data, err := protocol.Encode(protocol.TimeBeacon{V: protocol.Version, Time: time.Now()})
		if err == nil {
			err = pub.Publish(protocol.TimeTopic, data, false, 0)
		}
		switch {
		case err != nil && !failing:
			log.Warn("time beacon not published", "err", err)
			failing = true
		case err == nil && failing:
			log.Info("time beacon published again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
