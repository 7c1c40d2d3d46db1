package backend

import (
	"context"
	"time"

	"github.com/semko/semko/protocol"
)

// DefaultTimeBeacon is how often the backend publishes its time for the
// edges (mqtt.time_beacon). An edge holds the presses of a new boot until
// its first beacon, so this is also the longest such a wait lasts.
const DefaultTimeBeacon = 10 * time.Second

// runTimeBeacon publishes a protocol.TimeBeacon on protocol.TimeTopic every
// interval until ctx is done. QoS 0 and not retained: a beacon that arrives
// late or twice would be a stale time, and the next one is seconds away.
func (a *App) runTimeBeacon(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	failing := false
	for {
		data, err := protocol.Encode(protocol.TimeBeacon{V: protocol.Version, Time: time.Now()})
		if err == nil {
			err = a.publisher().Publish(protocol.TimeTopic, data, false, 0)
		}
		switch {
		case err != nil && !failing:
			a.log.Warn("time beacon not published", "err", err)
			failing = true
		case err == nil && failing:
			a.log.Info("time beacon published again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
