package broker

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/pebble"
	"github.com/mochi-mqtt/server/v2/packets"
)

// storeHook is mochi's pebble hook minus two write patterns that protect
// nothing:
//
//   - For every inbound QoS 1 publish mochi stores its PUBACK as an
//     inflight record and deletes it right after sending it: with
//     pebble.Sync, two fsyncs per vote on the device's read goroutine,
//     about a tenth of the broker's CPU under load (a PUBACK lost in a
//     crash only makes the device resend, and ingest is idempotent).
//     docs/performance.md measured 1.48x the acknowledged votes per second
//     without them.
//   - For a session that ends with its connection (MQTT 3.1.1 clean
//     session, MQTT 5 without session expiry: every keypad's) mochi stores
//     the client, each subscription and each outbound inflight message,
//     and deletes them all again at disconnect: about nine synced writes
//     a connection, on the path a reconnect storm takes 19,500 times. Such
//     a session cannot outlive a broker restart, so restoring it would only
//     bring back subscriptions and messages nobody will collect.
//
// Persistent sessions (the backend's, observer apps'), their
// subscriptions and inflight messages, and retained messages are stored
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

// ephemeral reports whether cl's session ends with its connection, by the
// rule mochi applies at disconnect.
func ephemeral(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval == 0
	}
	return cl.Properties.Clean
}

func (h *storeHook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if !ephemeral(cl) {
		h.Hook.OnSessionEstablished(cl, pk)
	}
}

func (h *storeHook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if !ephemeral(cl) {
		h.Hook.OnWillSent(cl, pk)
	}
}

func (h *storeHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	if ephemeral(cl) {
		return
	}
	// mochi's pebble hook stores every filter of the SUBSCRIBE, refused
	// ones too, and a restart would restore those as subscriptions.
	var granted packets.Subscriptions
	var codes []byte
	for i, sub := range pk.Filters {
		if i < len(reasonCodes) && reasonCodes[i] <= packets.CodeGrantedQos2.Code {
			granted = append(granted, sub)
			codes = append(codes, reasonCodes[i])
		}
	}
	if len(granted) > 0 {
		pk.Filters = granted
		h.Hook.OnSubscribed(cl, pk, codes)
	}
}

func (h *storeHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if !ephemeral(cl) {
		h.Hook.OnUnsubscribed(cl, pk)
	}
}

func (h *storeHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	if pk.FixedHeader.Type == packets.Puback {
		h.skipped.Store(cl.ID, pk.PacketID)
		return
	}
	if !ephemeral(cl) {
		h.Hook.OnQosPublish(cl, pk, sent, resends)
	}
}

func (h *storeHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type == packets.Puback {
		if id, ok := h.skipped.Load(cl.ID); ok && id.(uint16) == pk.PacketID {
			h.skipped.Delete(cl.ID)
			return
		}
	}
	if !ephemeral(cl) {
		h.Hook.OnQosComplete(cl, pk)
	}
}

func (h *storeHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if !ephemeral(cl) {
		h.Hook.OnQosDropped(cl, pk)
	}
}

func (h *storeHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.skipped.Delete(cl.ID)
	if !ephemeral(cl) {
		h.Hook.OnDisconnect(cl, err, expire)
	}
}
