package broker

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// resumeHook closes a gap in mochi v2.7.9's session takeover. When a client
// resumes a persistent session, mochi copies the old session's inflight
// messages to the new connection, clears them from the old one (one synced
// store delete each) and only then registers the new connection. A QoS 1
// message routed to the session in that window is queued on the old,
// taken-over client and silently lost. With the backend consuming from a
// broker running alone, that is a vote a device already has its PUBACK for.
//
// The hook sees such a message in OnQosPublish and, once the successor is
// registered, publishes it again. A duplicate is harmless: every consumer of
// the contract is idempotent (points are keyed by their timestamp).
type resumeHook struct {
	mqtt.HookBase
	b *Broker
}

// resumeWait bounds how long a caught message waits for the successor.
const resumeWait = 10 * time.Second

func (h *resumeHook) ID() string { return "semko-resume" }

func (h *resumeHook) Provides(b byte) bool { return b == mqtt.OnQosPublish }

func (h *resumeHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if !cl.IsTakenOver() || pk.FixedHeader.Type != packets.Publish || h.b.closing.Load() {
		return
	}
	h.b.count.resumeRepublished.Add(1)
	topic, payload, qos := pk.TopicName, append([]byte(nil), pk.Payload...), pk.FixedHeader.Qos
	// One short-lived goroutine per message caught in the window (bounded by
	// the session's inflight limit); it ends as soon as the successor is
	// registered, microseconds later, or when the broker closes.
	go func() {
		deadline := time.NewTimer(resumeWait)
		defer deadline.Stop()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if cur, ok := h.b.server.Clients.Get(cl.ID); ok && cur != cl {
				break
			}
			select {
			case <-tick.C:
				continue
			case <-deadline.C:
			case <-h.b.ctx.Done():
				return
			}
			break
		}
		if err := h.b.server.Publish(topic, payload, false, qos); err != nil {
			h.b.warn("mqtt republish after session takeover failed", "client", cl.ID, "topic", truncate(topic), "err", err)
		}
	}()
}
