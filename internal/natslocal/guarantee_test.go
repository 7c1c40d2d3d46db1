package natslocal

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/semko/semko/internal/testwait"
)

// mqttStream is nats-server's internal stream of every QoS 1/2 MQTT
// publish; see deploy/cluster/README.md for why Semko consumes it directly.
const (
	mqttStream   = "$MQTT_msgs"
	mqttSubjects = "$MQTT.msgs.>"
)

// TestAckedMeansInStream is the experiment behind the cluster's delivery
// guarantee: publishers send QoS 1 messages to all three nodes, the
// $MQTT_msgs stream's leader is SIGKILLed mid-stream and started again, and
// every message a publisher got a PUBACK for must be read from a durable,
// explicit-ack consumer on $MQTT_msgs created before the traffic. It logs
// the figures written down in deploy/cluster/README.md.
//
// Two runs: one kills the leader of $MQTT_msgs, one the leader of a user
// stream capturing the same subjects (the design that was rejected; its
// losses are logged for the record, not asserted).
func TestAckedMeansInStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node NATS cluster")
	}
	t.Run("kill the $MQTT_msgs leader", func(t *testing.T) { ackedMeansInStream(t, mqttStream) })
	t.Run("kill the user stream leader", func(t *testing.T) { ackedMeansInStream(t, "EXP_USER") })
}

func ackedMeansInStream(t *testing.T, victim string) {
	c := StartForTest(t, Options{})
	ctx := t.Context()

	// The first MQTT connection makes the server create its streams.
	first := mqttConnect(t, c.Nodes[0].MQTTURL(), "warmup")
	first.Disconnect(0)

	nc, err := nats.Connect(c.ClientURLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var stream jetstream.Stream
	testwait.Within(t, 30*time.Second, "the $MQTT_msgs stream", func() bool {
		stream, err = js.Stream(ctx, mqttStream)
		return err == nil
	})
	// JetStream API calls right after the cluster formed may time out
	// while assets elect leaders: retried.
	var cons jetstream.Consumer
	testwait.Within(t, 30*time.Second, "the durable on $MQTT_msgs", func() bool {
		cons, err = stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable: "semko-exp", AckPolicy: jetstream.AckExplicitPolicy,
			FilterSubjects: []string{"$MQTT.msgs.exp.*.vote"}, Replicas: Size,
			AckWait: 30 * time.Second, MaxAckPending: 4096,
		})
		return err == nil
	})

	// For comparison only (logged, not asserted): a user stream capturing
	// the same subjects, the design that loses acknowledged messages.
	var user jetstream.Stream
	testwait.Within(t, 30*time.Second, "the user stream", func() bool {
		user, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: "EXP_USER", Subjects: []string{"exp.*.vote"}, Replicas: Size, Storage: jetstream.FileStorage,
		})
		return err == nil
	})

	// Consumer side: every id read, with how often.
	var mu sync.Mutex
	seen := map[string]int{}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		mu.Lock()
		seen[string(m.Data())]++
		mu.Unlock()
		_ = m.Ack()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()

	// Publisher side: 12 clients, four per node, each sending its messages
	// one after another with up to 10 in flight, resending what got no
	// PUBACK (as the edge's outbox does) on another node.
	const clients, perClient = 12, 800
	var acked sync.Map
	var nAcked atomic.Int64
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			id := fmt.Sprintf("p%d", i)
			urls := c.MQTTURLs()
			f := &failover{id: id, urls: []string{urls[i%Size], urls[(i+1)%Size], urls[(i+2)%Size]}}
			defer f.close()
			sem := make(chan struct{}, 10)
			var inner sync.WaitGroup
			for n := range perClient {
				sem <- struct{}{}
				inner.Go(func() {
					defer func() { <-sem }()
					body := id + "-" + strconv.Itoa(n)
					for attempt := 0; attempt < 200 && ctx.Err() == nil; attempt++ {
						cl := f.client()
						if cl == nil {
							time.Sleep(100 * time.Millisecond)
							continue
						}
						tok := cl.Publish("exp/"+id+"/vote", 1, false, body)
						if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
							acked.Store(body, true)
							nAcked.Add(1)
							return
						}
						time.Sleep(100 * time.Millisecond)
					}
				})
			}
			inner.Wait()
		})
	}

	// The fault: SIGKILL the stream's leader once a third is acknowledged.
	testwait.Within(t, 120*time.Second, "a third of the messages acknowledged", func() bool {
		return nAcked.Load() >= clients*perClient/3
	})
	victimStream := stream
	if victim != mqttStream {
		victimStream = user
	}
	info, err := victimStream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var leader *Node
	for _, n := range c.Nodes {
		if info.Cluster != nil && n.Name == info.Cluster.Leader {
			leader = n
		}
	}
	if leader == nil {
		t.Fatalf("no leader for %s: %+v", victim, info.Cluster)
	}
	killedAt := nAcked.Load()
	leader.Kill()
	killed := time.Now()
	testwait.Within(t, 60*time.Second, "acknowledgements resuming after the kill", func() bool {
		return nAcked.Load() >= killedAt+500
	})
	resumed := time.Since(killed)
	if err := leader.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	total := int(nAcked.Load())
	testwait.Within(t, 60*time.Second, "the consumer reading every acknowledged message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		missing := 0
		acked.Range(func(k, _ any) bool {
			if seen[k.(string)] == 0 {
				missing++
			}
			return true
		})
		return missing == 0
	}, func() string {
		mu.Lock()
		defer mu.Unlock()
		var miss []string
		acked.Range(func(k, _ any) bool {
			if seen[k.(string)] == 0 && len(miss) < 10 {
				miss = append(miss, k.(string))
			}
			return true
		})
		return fmt.Sprintf("%d read; missing include %s", len(seen), strings.Join(miss, " "))
	})
	mu.Lock()
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	mu.Unlock()
	userHas := map[string]bool{}
	var uinfo *jetstream.StreamInfo
	testwait.Within(t, 30*time.Second, "the user stream answering", func() bool {
		uinfo, err = user.Info(ctx)
		return err == nil
	})
	for seq := uinfo.State.FirstSeq; seq <= uinfo.State.LastSeq && uinfo.State.Msgs > 0; seq++ {
		var m *jetstream.RawStreamMsg
		for attempt := 0; attempt < 50; attempt++ {
			if m, err = user.GetMsg(ctx, seq); err == nil || errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err == nil {
			userHas[string(m.Data)] = true
		}
	}
	userMissing := 0
	acked.Range(func(k, _ any) bool {
		if !userHas[k.(string)] {
			userMissing++
		}
		return true
	})
	t.Logf("user stream EXP_USER (R3, same subjects): %d of %d acknowledged messages missing", userMissing, total)
	if total != clients*perClient {
		t.Errorf("%d of %d messages acknowledged: a publisher gave up", total, clients*perClient)
	}
	t.Logf("%d messages acknowledged, all read by the durable on $MQTT_msgs; %d duplicates; %s leader %s killed after %d acks; acks resumed within %v",
		total, dups, victim, leader.Name, killedAt, resumed.Round(10*time.Millisecond))
}

// failover is a publisher that reconnects by itself, to the next URL in
// turn, with a fresh paho client each time. paho's own auto-reconnect is
// not used: its reconnect goroutine races with Disconnect and with the
// comms workers it replaces (eclipse-paho/paho.mqtt.golang#550, #703), and
// the node kills here provoke exactly that; the edge and the backend
// reconnect the same way for the same reason.
type failover struct {
	id   string
	urls []string

	mu   sync.Mutex
	cl   paho.Client
	turn int
}

// client returns a connected client, dialling the next URL when the last
// connection is gone, or nil when that dial failed (the caller retries).
func (f *failover) client() paho.Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cl != nil && f.cl.IsConnectionOpen() {
		return f.cl
	}
	if f.cl != nil {
		f.cl.Disconnect(0)
		f.cl = nil
	}
	url := f.urls[f.turn%len(f.urls)]
	f.turn++
	cl, err := dialMQTT(url, f.id)
	if err != nil {
		return nil
	}
	f.cl = cl
	return cl
}

func (f *failover) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cl != nil {
		f.cl.Disconnect(0)
	}
}

// mqttConnect is dialMQTT failing t on error (test goroutine only).
func mqttConnect(t *testing.T, url, id string) paho.Client {
	t.Helper()
	cl, err := dialMQTT(url, id)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// dialMQTT connects a clean-session MQTT 3.1.1 client that does not
// reconnect by itself.
func dialMQTT(url, id string) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).SetOrderMatters(false)
	cl := paho.NewClient(o)
	tok := cl.Connect()
	if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("mqtt connect %s to %s: %v", id, url, tok.Error())
	}
	return cl, nil
}
