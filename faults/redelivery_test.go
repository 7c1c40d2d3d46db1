package faults

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/protocol"
)

// TestRedelivery is guarantee 6: the same vote delivered twice, as a device
// does when a PUBACK is lost, is counted once. A raw paho client with a
// device's credentials publishes one vote payload twice: on one connection,
// across a reconnect, and across a backend SIGKILL and restart (the
// backend's memory of recent seqs is gone then, and the point's identity,
// its press timestamp, is what keeps the count at one).
func TestRedelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: runs InfluxDB and the backend")
	}
	db := influxlocal.StartForTest(t)
	model := fleet.Generate(fleet.Spec{Seed: 9, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 3})
	be := newBackend(t, db, model, backendOptions{})
	be.start()

	cases := []struct {
		name string
		// between runs between the two deliveries; it returns the client
		// for the second one.
		between func(t *testing.T, dev fleet.Device, c paho.Client) paho.Client
		// counted: whether ingest itself recognises the second delivery
		// (it remembers recent seqs in memory).
		counted bool
	}{
		{"same connection", func(t *testing.T, _ fleet.Device, c paho.Client) paho.Client { return c }, true},
		{"after a reconnect", func(t *testing.T, dev fleet.Device, c paho.Client) paho.Client {
			c.Disconnect(100)
			return connectDevice(t, be, dev)
		}, true},
		{"after a backend restart", func(t *testing.T, dev fleet.Device, c paho.Client) paho.Client {
			c.Disconnect(0)
			be.kill()
			be.start()
			return connectDevice(t, be, dev)
		}, false},
	}
	want := map[string]fleet.Counts{}
	for i, tc := range cases {
		dev := model.Devices[i]
		t.Run(tc.name, func(t *testing.T) {
			vote := protocol.Vote{
				V: protocol.Version, Device: dev.ID, Seq: 7, Time: time.Now().UTC(), Score: 2,
				Scale: protocol.ScaleCSAT5, Channel: protocol.ChannelKeypad, Valid: true,
			}
			payload, err := protocol.Encode(vote)
			if err != nil {
				t.Fatal(err)
			}
			topic := protocol.DeviceTopic(dev.ID, protocol.KindVote)
			c := connectDevice(t, be, dev)
			before := be.metric("semko_ingest_duplicates_total")
			publish(t, c, topic, payload)
			c = tc.between(t, dev, c)
			publish(t, c, topic, payload)
			c.Disconnect(100)
			dups := be.metric("semko_ingest_duplicates_total")
			if tc.counted {
				dups -= before // else the counter started again with the process
			}
			if want := map[bool]float64{true: 1, false: 0}[tc.counted]; dups != want {
				t.Errorf("semko_ingest_duplicates_total grew by %v, want %v", dups, want)
			}
			t.Logf("guarantee 6 (%s): one vote delivered twice; duplicates suppressed by ingest: %v", tc.name, dups)
		})
		want[dev.ID] = fleet.Counts{Votes: 1, Scores: [5]int{0, 1, 0, 0, 0}}
	}
	be.waitSpoolEmpty(30 * time.Second)
	landed := checkExact(t, db, want, false)
	t.Logf("guarantee 6: %d votes delivered twice each, %d landed", len(cases), landed)
}

// connectDevice logs in as dev the way an edge does (MQTT 3.1.1, clean
// session) and fails the test if the broker refuses.
func connectDevice(t *testing.T, be *backendProc, dev fleet.Device) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().
		AddBroker(be.brokerURL()).SetClientID(dev.ID).SetUsername(dev.ID).SetPassword(dev.Secret).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect as %s: %v", dev.ID, tok.Error())
	}
	return c
}

// publish sends payload at QoS 1 and waits for the PUBACK, which the broker
// sends only once the backend has the vote on disk.
func publish(t *testing.T, c paho.Client, topic string, payload []byte) {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: no PUBACK: %v", topic, tok.Error())
	}
}
