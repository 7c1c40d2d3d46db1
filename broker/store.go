package broker

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/pebble"
	"github.com/mochi-mqtt/server/v2/packets"
)

// storeHook is mochi's pebble hook minus one write pattern. For every
// inbound QoS 1 publish mochi stores its PUBACK as an inflight record and
// deletes it right after sending it: with pebble.Sync, two fsyncs per vote
// on the device's read goroutine, about a tenth of the broker's CPU under
// load, protecting nothing (a PUBACK lost in a crash only makes the device
// resend, and ingest is idempotent). docs/performance.md measured 1.48x the
// acknowledged votes per second without them. Everything else (sessions,
// subscriptions, retained messages, outbound inflight messages) is stored
// as before.
type storeHook struct {
	*pebble.Hook
	// skipped holds, per client, the packet id of the inbound PUBACK whose
	// store was skipped, until mochi reports it complete. mochi handles one
	// inbound publish at a time per client, so one entry per client is
	// enough, and it tells that completion apart from an outbound message
	// completing under the same packet id.
	skipped sync.Map // client id -> uint16
}

func newStoreHook() *storeHook { return &storeHook{Hook: new(pebble.Hook)} }

func (h *storeHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	if pk.FixedHeader.Type == packets.Puback {
		h.skipped.Store(cl.ID, pk.PacketID)
		return
	}
	h.Hook.OnQosPublish(cl, pk, sent, resends)
}

func (h *storeHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type == packets.Puback {
		if id, ok := h.skipped.Load(cl.ID); ok && id.(uint16) == pk.PacketID {
			h.skipped.Delete(cl.ID)
			return
		}
	}
	h.Hook.OnQosComplete(cl, pk)
}

func (h *storeHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.skipped.Delete(cl.ID)
	h.Hook.OnDisconnect(cl, err, expire)
}
