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

// A keypad's clean session ends with its connection: nothing of it is
// stored. A persistent session (an observer app's) is stored as before.
func TestStoreKeepsOnlyPersistentSessions(t *testing.T) {
	h := newStoreHook()
	if err := h.Init(&pebble.Options{Path: t.TempDir(), Mode: pebble.Sync}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Stop() })
	count := func() (clients, subs, inflight int) {
		t.Helper()
		c, err := h.StoredClients()
		if err != nil {
			t.Fatal(err)
		}
		s, err := h.StoredSubscriptions()
		if err != nil {
			t.Fatal(err)
		}
		m, err := h.StoredInflightMessages()
		if err != nil {
			t.Fatal(err)
		}
		return len(c), len(s), len(m)
	}
	session := func(cl *mqtt.Client) {
		sub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe},
			Filters: packets.Subscriptions{{Filter: "semko/v1/devices/" + cl.ID + "/cmd", Qos: 1}}}
		out := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 3,
			TopicName: "semko/v1/devices/" + cl.ID + "/cmd"}
		h.OnSessionEstablished(cl, packets.Packet{})
		h.OnSubscribed(cl, sub, []byte{1})
		h.OnQosPublish(cl, out, 1, 0)
	}

	keypad := &mqtt.Client{ID: "kp-0001"}
	keypad.Properties.ProtocolVersion, keypad.Properties.Clean = 4, true
	session(keypad)
	v5 := &mqtt.Client{ID: "kp-0002"}
	v5.Properties.ProtocolVersion = 5 // no session expiry: ends with the connection
	session(v5)
	if c, s, m := count(); c+s+m != 0 {
		t.Fatalf("sessions that end with their connection stored: %d clients, %d subscriptions, %d inflight", c, s, m)
	}

	app := &mqtt.Client{ID: "app-1"}
	app.Properties.ProtocolVersion = 4
	session(app)
	if c, s, m := count(); c != 1 || s != 1 || m != 1 {
		t.Fatalf("persistent session: %d clients, %d subscriptions, %d inflight stored, want 1 each", c, s, m)
	}
	h.OnDisconnect(app, nil, false)
	if c, _, _ := count(); c != 1 {
		t.Fatal("a persistent session's record did not outlive its connection")
	}
}
