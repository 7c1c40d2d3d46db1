package faults

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/semko/semko/backend/intake/natsin"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/natslocal"
	"github.com/semko/semko/internal/testwait"
)

const clusterUser, clusterSecret = "semko-backend", "cluster-faults-secret"

// TestClusterNodeAndReplicaKilled is the clustered deployment's guarantee
// (deploy/cluster/README.md): a fleet votes through a three-node NATS
// cluster, whose auth callout two backend replicas serve from the
// registry, into those two replicas sharing one durable consumer. The node
// leading $MQTT_msgs is SIGKILLed mid-stream and brought back; then one
// replica is SIGKILLed, the other carries on, and the killed one is started
// again (its spool holds what it had acknowledged). Every vote pressed must
// be in InfluxDB exactly once, device by device and score by score.
func TestClusterNodeAndReplicaKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: runs a NATS cluster, InfluxDB, two backends and a fleet")
	}
	issuer, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	issuerPub, _ := issuer.PublicKey()
	issuerSeed, _ := issuer.Seed()
	c := natslocal.StartForTest(t, natslocal.Options{Auth: &natslocal.Auth{
		User: clusterUser, Password: clusterSecret, CalloutIssuer: issuerPub}})
	db := influxlocal.StartForTest(t)
	model := fleet.Generate(fleet.Spec{Seed: 14, Orgs: 2, SitesPerOrg: 2, CountersPerSite: 3})

	replicas := []*backendProc{
		newClusterBackend(t, c, db, model, string(issuerSeed)),
		newClusterBackend(t, c, db, model, string(issuerSeed)),
	}
	for _, be := range replicas {
		be.start()
	}
	for _, be := range replicas {
		be.waitReady(60 * time.Second)
	}

	tally, runErr := runFleet(t, replicas[0], model, 300*time.Millisecond, 16, 120*time.Second)

	// Fault 1: the node leading $MQTT_msgs dies mid-stream; devices on it
	// reconnect to the others; it comes back on its data.
	testwait.Within(t, 90*time.Second, "fleet taking 20 votes", func() bool { return tally.Total().Votes >= 20 })
	js := clusterJS(t, c)
	leader := streamLeader(t, c, js)
	before := tally.Total().Votes
	leader.Kill()
	killed := time.Now()
	testwait.Within(t, 60*time.Second, "votes taken after the node's death", func() bool {
		return tally.Total().Votes >= before+10
	})
	t.Logf("node %s (leader of %s) SIGKILLed after %d votes; %d votes taken %v later",
		leader.Name, natsin.Stream, before, tally.Total().Votes, time.Since(killed).Round(time.Millisecond))
	if err := leader.Start(t.Context()); err != nil {
		t.Fatal(err)
	}

	// Fault 2: one replica dies; the other takes every message, including
	// those the dead one held unacknowledged (after ack_wait).
	before = tally.Total().Votes
	testwait.Within(t, 90*time.Second, "fleet taking 15 more votes", func() bool { return tally.Total().Votes >= before+15 })
	replicas[0].kill()
	before = tally.Total().Votes
	accepted := replicas[1].metrics()["semko_natsin_messages_total"]
	testwait.Within(t, 60*time.Second, "votes taken while a replica is dead", func() bool {
		return tally.Total().Votes >= before+10
	})
	// The survivor must carry the stream alone (a consumer stalled by the
	// node's death would leave everything waiting for the restart).
	testwait.Within(t, 60*time.Second, "the surviving replica taking the messages", func() bool {
		return replicas[1].metrics()["semko_natsin_messages_total"] >= accepted+20
	})
	t.Logf("replica 1 SIGKILLed after %d votes; restarted after %d", before, tally.Total().Votes)
	replicas[0].start()

	if err := <-runErr; err != nil {
		t.Fatalf("fleet run: %v", err)
	}
	// The fleet ended with every edge outbox empty: the cluster PUBACKed
	// every vote. The consumer must have handed them all to a replica.
	testwait.Within(t, 60*time.Second, "the durable consumer acknowledging everything", func() bool {
		return durablePending(t, js) == 0
	})
	for _, be := range replicas {
		be.waitSpoolEmpty(90 * time.Second)
	}
	landed := checkExact(t, db, tally.Devices(), false)
	var shares []string
	for i, be := range replicas {
		m := be.metrics()
		shares = append(shares, fmt.Sprintf("replica %d accepted %v (since its last start), duplicates %v",
			i+1, m["semko_natsin_messages_total"], m["semko_ingest_duplicates_total"]))
	}
	t.Logf("cluster guarantee: %d units over 3 nodes; pressed %s; landed %d valid votes exactly; %s",
		len(model.Devices), describe(tally.Total()), landed, strings.Join(shares, "; "))
}

// newClusterBackend configures one backend replica on the cluster; it
// starts nothing. Both replicas share the durable and serve the callout.
// Lines in extra are added to the top level of its configuration.
func newClusterBackend(t *testing.T, c *natslocal.Cluster, db *influxlocal.Server, model *fleet.Model, seed string, extra ...string) *backendProc {
	t.Helper()
	b := &backendProc{t: t, dir: t.TempDir(), mqttAddr: freeAddr(t), httpAddr: freeAddr(t),
		broker: strings.Join(c.MQTTURLs(), ","),
		env:    []string{"SEMKO_NATS_SECRET=" + clusterSecret, "SEMKO_NATS_CALLOUT_SEED=" + seed}}
	if err := model.WriteFleetFile(filepath.Join(b.dir, "fleet.yaml"), broker.HashSecret); err != nil {
		t.Fatal(err)
	}
	var natsURLs []string
	for _, n := range c.Nodes {
		natsURLs = append(natsURLs, n.ClientURL())
	}
	cfg := fmt.Sprintf(`data_dir: %s
fleet_file: %s
mqtt:
  addr: %s
  cluster:
    nats_urls: [%s]
    mqtt_urls: [%s]
    username: %s
    ack_wait: 3s
    schedule_lease: 2s
http:
  addr: %s
influx:
  url: %s
  bucket: %s
  flush_interval: 50ms
%s`, filepath.Join(b.dir, "data"), filepath.Join(b.dir, "fleet.yaml"), b.mqttAddr,
		strings.Join(natsURLs, ", "), strings.Join(c.MQTTURLs(), ", "), clusterUser,
		b.httpAddr, db.URL(), db.Database(), strings.Join(extra, "\n"))
	if err := os.WriteFile(filepath.Join(b.dir, "semko.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && b.p != nil {
			t.Logf("tail of the backend's log %s:\n%s", b.p.logPath, b.p.tail(40))
		}
	})
	return b
}

// waitReady waits for /readyz: the durable exists and is being consumed.
func (b *backendProc) waitReady(limit time.Duration) {
	b.t.Helper()
	testwait.Within(b.t, limit, "backend ready on the cluster", func() bool {
		code, _, err := b.get("/readyz")
		return err == nil && code == http.StatusOK
	}, func() string { _, body, _ := b.get("/readyz"); return body })
}

// clusterJS connects to the cluster as the backend's user.
func clusterJS(t *testing.T, c *natslocal.Cluster) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(c.ClientURLs(), nats.UserInfo(clusterUser, clusterSecret), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// streamLeader is the node leading $MQTT_msgs: killing it is the fault
// that lost acknowledged messages with a user stream.
func streamLeader(t *testing.T, c *natslocal.Cluster, js jetstream.JetStream) *natslocal.Node {
	t.Helper()
	var leader *natslocal.Node
	testwait.Within(t, 30*time.Second, "a leader for "+natsin.Stream, func() bool {
		s, err := js.Stream(t.Context(), natsin.Stream)
		if err != nil {
			return false
		}
		info, err := s.Info(t.Context())
		if err != nil || info.Cluster == nil {
			return false
		}
		for _, n := range c.Nodes {
			if n.Name == info.Cluster.Leader {
				leader = n
			}
		}
		return leader != nil
	})
	return leader
}

// durablePending is what the backends' durable has not had acknowledged:
// pending delivery plus delivered and unacknowledged.
func durablePending(t *testing.T, js jetstream.JetStream) int {
	t.Helper()
	cons, err := js.Consumer(t.Context(), natsin.Stream, natsin.DefaultDurable)
	if err != nil {
		return -1
	}
	info, err := cons.Info(t.Context())
	if err != nil {
		return -1
	}
	return int(info.NumPending) + info.NumAckPending
}
