package natsin_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"

	"github.com/semko/semko/backend/intake/mqttin"
	"github.com/semko/semko/backend/intake/natsin"
	"github.com/semko/semko/internal/natslocal"
	"github.com/semko/semko/internal/testwait"
	"github.com/semko/semko/protocol"
)

func TestSubjectMapping(t *testing.T) {
	for topic, subj := range map[string]string{
		protocol.UpstreamFilter(protocol.KindVote):          "semko.v1.devices.*.vote",
		protocol.UpstreamFilter(protocol.KindCommandResult): "semko.v1.devices.*.cmd.result",
		protocol.Root + "/alerts/#":                         "semko.v1.alerts.>",
	} {
		if got := natsin.Subject(topic); got != subj {
			t.Errorf("Subject(%q) = %q, want %q", topic, got, subj)
		}
	}
	got, ok := natsin.Topic("$MQTT.msgs.semko.v1.devices.kp-1.config.applied")
	if !ok || got != "semko/v1/devices/kp-1/config/applied" {
		t.Errorf("Topic = %q %v", got, ok)
	}
	if _, ok := natsin.Topic("semko.v1.devices.kp-1.vote"); ok {
		t.Error("Topic accepted a subject outside $MQTT_msgs")
	}
	if n := len(natsin.Filters()); n != 6 {
		t.Errorf("%d filters, want one per upstream kind (6)", n)
	}
}

// recorder is an Acceptor counting what each replica stored; it fails the
// first attempt of every tenth message transiently. The replica named by
// holdUntilOther stores nothing until another replica has stored one, so
// a test sees the work shared whichever replica's pull the cluster serves
// first (a busy machine can let one replica's buffered pull take a whole
// small batch).
type recorder struct {
	holdUntilOther string
	other          chan struct{} // closed when a replica other than holdUntilOther stores
	otherOnce      sync.Once

	mu       sync.Mutex
	stored   map[string]int // payload -> times stored
	by       map[string]int // replica -> messages stored
	failed   map[string]bool
	bad      int
	received map[string]time.Time
}

// holdAtMost bounds the hold; the consumers' AckWait is longer, so that a
// held message is answered once, not redelivered to the other replica
// meanwhile (with 256 workers a replica holds hundreds at once).
const holdAtMost = 20 * time.Second

func newRecorder() *recorder {
	return &recorder{stored: map[string]int{}, by: map[string]int{}, failed: map[string]bool{}, received: map[string]time.Time{},
		other: make(chan struct{})}
}

func (r *recorder) acceptor(replica string) mqttin.Acceptor {
	return mqttin.AcceptFunc(func(ctx context.Context, tp protocol.Topic, payload []byte, received time.Time) error {
		if replica == r.holdUntilOther {
			select {
			case <-r.other:
			case <-time.After(holdAtMost):
				// Fall through: the test then reports the other replica idle.
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		p := string(payload)
		if p == "bad" {
			r.bad++
			return fmt.Errorf("%w: test", protocol.ErrInvalid)
		}
		if tp.Kind != protocol.KindVote {
			return fmt.Errorf("%w: kind %s", protocol.ErrInvalid, tp.Kind)
		}
		var n int
		if _, err := fmt.Sscanf(p[len(tp.Device)+1:], "%d", &n); err == nil && n%10 == 0 && !r.failed[p] {
			r.failed[p] = true
			return errors.New("spool full (test)")
		}
		r.stored[p]++
		r.by[replica]++
		if replica != r.holdUntilOther {
			r.otherOnce.Do(func() { close(r.other) })
		}
		r.received[p] = received
		return nil
	})
}

func startConsumer(t *testing.T, c *natslocal.Cluster, acc mqttin.Acceptor) {
	t.Helper()
	nc, err := nats.Connect(c.ClientURLs(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := natsin.New(natsin.Options{Conn: nc, Intake: acc, AckWait: holdAtMost + 10*time.Second,
		AcceptTimeout: holdAtMost + 5*time.Second, NakDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
		nc.Close()
	})
	testwait.Within(t, 30*time.Second, "consumer ready", func() bool { return cons.Ready() == nil })
}

func dial(t *testing.T, url, id string) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetProtocolVersion(4).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectTimeout(10 * time.Second).SetOrderMatters(false)
	cl := paho.NewClient(o)
	if tok := cl.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(0) })
	return cl
}

// TestReplicasShareTheDurable: two consumers on one durable split the
// devices' votes, each vote is stored (a transient failure is redelivered,
// bad input is not), and nothing outside the upstream kinds is consumed.
func TestReplicasShareTheDurable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node NATS cluster")
	}
	c := natslocal.StartForTest(t, natslocal.Options{})
	rec := newRecorder()
	rec.holdUntilOther = "b"
	startConsumer(t, c, rec.acceptor("a"))
	startConsumer(t, c, rec.acceptor("b"))

	const devices, per = 6, 100
	for d := range devices {
		cl := dial(t, c.Nodes[d%natslocal.Size].MQTTURL(), fmt.Sprintf("kp-%d", d))
		for n := range per {
			body := fmt.Sprintf("kp-%d-%d", d, n)
			tok := cl.Publish(protocol.DeviceTopic(fmt.Sprintf("kp-%d", d), protocol.KindVote), 1, false, body)
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish: %v", tok.Error())
			}
		}
		// Downstream and bad upstream traffic: not for the backend, or
		// rejected once.
		cl.Publish(protocol.DeviceTopic(fmt.Sprintf("kp-%d", d), protocol.KindActivate), 1, false, "not upstream").Wait()
		cl.Publish(protocol.DeviceTopic(fmt.Sprintf("kp-%d", d), protocol.KindHeartbeat), 1, false, "bad").Wait()
	}
	testwait.Within(t, 60*time.Second, "every vote stored", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.stored) == devices*per
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.by["a"] == 0 || rec.by["b"] == 0 {
		t.Errorf("replicas did not share the work: %v", rec.by)
	}
	if len(rec.failed) != devices*per/10 {
		t.Errorf("%d transient failures, want %d", len(rec.failed), devices*per/10)
	}
	if rec.bad != devices {
		t.Errorf("bad input seen %d times, want %d (terminated, not redelivered)", rec.bad, devices)
	}
	for p, ts := range rec.received {
		if ts.IsZero() || time.Since(ts) > time.Minute {
			t.Fatalf("%s: received %v, want the cluster's store time", p, ts)
		}
	}
	t.Logf("replica a stored %d, b %d; %d transient failures redelivered", rec.by["a"], rec.by["b"], len(rec.failed))
}

// TestDownstreamThroughAnyNode: the backend publishes through node 1; a
// device on node 3 gets a QoS 1 activation once, and a device connecting
// to node 2 later gets the retained config.
func TestDownstreamThroughAnyNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node NATS cluster")
	}
	c := natslocal.StartForTest(t, natslocal.Options{})
	pub, err := natsin.NewPublisher(natsin.PublisherOptions{URLs: []string{c.Nodes[0].MQTTURL()}, Username: "semko-backend"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pub.Run(ctx) }()
	defer func() { stop(); <-done }()
	testwait.Within(t, 30*time.Second, "publisher connected", pub.Connected)

	var mu sync.Mutex
	got := map[string][]byte{}
	qos := map[string]byte{}
	handler := func(_ paho.Client, m paho.Message) {
		mu.Lock()
		defer mu.Unlock()
		got[m.Topic()] = append(got[m.Topic()], m.Payload()...)
		qos[m.Topic()] = m.Qos()
	}
	dev := dial(t, c.Nodes[2].MQTTURL(), "kp-1")
	act := protocol.DeviceTopic("kp-1", protocol.KindActivate)
	if tok := dev.Subscribe(act, 1, handler); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if err := pub.Publish(act, []byte("A"), false, 1); err != nil {
		t.Fatal(err)
	}
	cfg := protocol.DeviceTopic("kp-2", protocol.KindConfig)
	if err := pub.Publish(cfg, []byte("C"), true, 1); err != nil {
		t.Fatal(err)
	}
	dev2 := dial(t, c.Nodes[1].MQTTURL(), "kp-2")
	if tok := dev2.Subscribe(cfg, 1, handler); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	testwait.Within(t, 20*time.Second, "activation and retained config", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got[act]) > 0 && len(got[cfg]) > 0
	})
	// A second activation behind the first: a duplicate of "A" would show
	// before or right after it.
	if err := pub.Publish(act, []byte("B"), false, 1); err != nil {
		t.Fatal(err)
	}
	testwait.Within(t, 20*time.Second, "second activation", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got[act]) >= 2
	})
	mu.Lock()
	defer mu.Unlock()
	if string(got[act]) != "AB" || qos[act] != 1 {
		t.Errorf("activations: %q at QoS %d, want \"AB\" at QoS 1", got[act], qos[act])
	}
	if string(got[cfg]) != "C" {
		t.Errorf("retained config on another node: %q", got[cfg])
	}
	if err := pub.Publish("elsewhere/x", nil, false, 0); !errors.Is(err, natsin.ErrTopic) {
		t.Errorf("publish outside the root: %v", err)
	}
}
