package backend_test

import (
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/semko/semko/edge/outbox"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/protocol"
)

// TestReinstalledEdgeVotesLand: an edge agent reinstalled on a new disk
// keeps its device id but starts a fresh outbox, whose sequence numbers
// begin at 1 again. Its new votes reuse the old votes' numbers with new
// timestamps; every one of them must reach InfluxDB (issue 15, finding 1:
// ingest took them for duplicates, acknowledged and dropped them, and the
// edge deleted them). Real outboxes, the real embedded broker, a real
// InfluxDB.
func TestReinstalledEdgeVotesLand(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts InfluxDB")
	}
	db := influxlocal.StartForTest(t)
	model := fleet.Generate(fleet.Spec{Seed: 15, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 1})
	cfg := newTestConfig(t, model, db)
	cfg.MQTT.PublishRate = -1 // 600 votes at once; the limit is not under test
	app := runBackend(t, cfg)
	dev := model.Devices[0]

	c := paho.NewClient(paho.NewClientOptions().
		AddBroker("tcp://" + app.MQTTAddr()).SetClientID(dev.ID).SetUsername(dev.ID).SetPassword(dev.Secret).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect as %s: %v", dev.ID, tok.Error())
	}
	defer c.Disconnect(0)

	// deliver appends n votes to a fresh outbox in its own directory, as
	// the edge does on a press, publishes them and acknowledges each on
	// its PUBACK; it returns the sequence numbers the outbox gave.
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	pressed := 0
	deliver := func(n int) (first, last uint64) {
		ob, err := outbox.Open(t.TempDir(), outbox.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer ob.Close()
		for range n {
			pressed++
			at := base.Add(time.Duration(pressed) * time.Second)
			if _, err := ob.Append(protocol.KindVote, func(seq uint64) ([]byte, error) {
				return protocol.Encode(protocol.Vote{V: protocol.Version, Device: dev.ID, Seq: seq, Time: at,
					Score: 1 + pressed%5, Scale: protocol.ScaleCSAT5, Channel: protocol.ChannelKeypad, Valid: true})
			}); err != nil {
				t.Fatal(err)
			}
		}
		pending := ob.Pending(n)
		if len(pending) != n {
			t.Fatalf("outbox holds %d votes, want %d", len(pending), n)
		}
		for _, e := range pending {
			tok := c.Publish(protocol.DeviceTopic(dev.ID, protocol.KindVote), 1, false, e.Data)
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("seq %d: no PUBACK: %v", e.Seq, tok.Error())
			}
			if err := ob.Ack(e.Seq); err != nil {
				t.Fatal(err)
			}
		}
		return pending[0].Seq, pending[n-1].Seq
	}
	count := func() int64 {
		waitWritten(t, app)
		return countByDevice(t, db, fmt.Sprintf(`SELECT count(score) FROM vote WHERE device='%s' GROUP BY device`, dev.ID))[dev.ID]
	}

	if first, last := deliver(500); first != 1 || last != 500 {
		t.Fatalf("first outbox gave seq %d..%d", first, last)
	}
	if got := count(); got != 500 {
		t.Fatalf("InfluxDB holds %d votes before the reinstall, want 500", got)
	}
	if first, last := deliver(100); first != 1 || last != 100 {
		t.Fatalf("the reinstalled edge's outbox gave seq %d..%d, want 1..100", first, last)
	}
	got := count()
	t.Logf("reinstall case: %d of 100 new votes landed (InfluxDB holds %d of 600; ingest duplicates %d)",
		got-500, got, app.Summary().Duplicates)
	if got != 600 {
		t.Errorf("InfluxDB holds %d votes, want 600: %d of the reinstalled edge's 100 lost", got, 600-got)
	}
}
