package broker

import (
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/pebble"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The store keeps outbound inflight messages (they must survive a restart)
// but not the PUBACKs of inbound QoS 1 publishes, which mochi would write
// and delete again, synced, for every vote.
func TestStoreSkipsInboundAcks(t *testing.T) {
	h := newStoreHook()
	if err := h.Init(&pebble.Options{Path: t.TempDir(), Mode: pebble.Sync}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Stop() })
	cl := &mqtt.Client{ID: "kp-0001"}
	stored := func() int {
		msgs, err := h.StoredInflightMessages()
		if err != nil {
			t.Fatal(err)
		}
		return len(msgs)
	}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 7}

	// Inbound vote: mochi reports its PUBACK inflight, then complete.
	h.OnQosPublish(cl, ack, 1, 0)
	if n := stored(); n != 0 {
		t.Fatalf("inbound PUBACK stored: %d records", n)
	}
	h.OnQosComplete(cl, ack)

	// Outbound message under the same packet id: stored until the device's
	// PUBACK completes it.
	out := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 7, TopicName: "semko/v1/devices/kp-0001/cmd"}
	h.OnQosPublish(cl, out, 1, 0)
	if n := stored(); n != 1 {
		t.Fatalf("outbound message not stored: %d records", n)
	}
	h.OnQosComplete(cl, ack)
	if n := stored(); n != 0 {
		t.Fatalf("outbound message still stored after its PUBACK: %d records", n)
	}
}
