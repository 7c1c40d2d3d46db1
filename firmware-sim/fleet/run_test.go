package fleet

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/semko/semko/backend/fleet/timebeacon"
	"github.com/semko/semko/firmware-sim/keypad"
	"github.com/semko/semko/protocol"
)

// startBroker runs a real mochi broker on a free loopback port that lets
// everyone in, with the backend's time beacon, and returns its URL.
func startBroker(t *testing.T) string {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler), InlineClient: true})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		timebeacon.Run(ctx, srv, 100*time.Millisecond, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() { stop(); <-done })
	return "tcp://" + ln.Addr().String()
}

// received is what a backend-like subscriber saw, deduplicated the way the
// backend does: votes by (device, seq), activations by (device, id) once
// closed.
type received struct {
	mu          sync.Mutex
	votes       map[[2]any]protocol.Vote
	activations map[[2]string]protocol.ActivationRecord
	bad         int
}

func subscribe(t *testing.T, broker string) *received {
	t.Helper()
	r := &received{votes: map[[2]any]protocol.Vote{}, activations: map[[2]string]protocol.ActivationRecord{}}
	opts := paho.NewClientOptions().AddBroker(broker).SetClientID("test-backend").SetAutoReconnect(false)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect subscriber: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	filters := map[string]byte{
		protocol.UpstreamFilter(protocol.KindVote):       1,
		protocol.UpstreamFilter(protocol.KindActivation): 1,
	}
	tok := c.SubscribeMultiple(filters, func(_ paho.Client, msg paho.Message) {
		tp, err := protocol.ParseTopic(msg.Topic())
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.bad++
			return
		}
		switch tp.Kind {
		case protocol.KindVote:
			v, err := protocol.Decode[protocol.Vote](msg.Payload())
			if err != nil || v.Device != tp.Device {
				r.bad++
				return
			}
			r.votes[[2]any{v.Device, v.Seq}] = v
		case protocol.KindActivation:
			a, err := protocol.Decode[protocol.ActivationRecord](msg.Payload())
			if err != nil || a.Device != tp.Device {
				r.bad++
				return
			}
			if a.Closed {
				r.activations[[2]string{a.Device, a.ID}] = a
			}
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return r
}

// bySite turns what was received into Counts per site, comparable with the
// tally.
func (r *received) bySite(m *Model) map[string]Counts {
	siteOf := map[string]string{}
	for _, d := range m.Devices {
		siteOf[d.ID] = d.Site
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	sites := map[string]Counts{}
	for _, d := range m.Devices {
		sites[d.Site] = Counts{}
	}
	for _, v := range r.votes {
		c := sites[siteOf[v.Device]]
		if v.Valid {
			c.Votes++
			c.Scores[v.Score-1]++
		} else {
			c.Invalid++
		}
		sites[siteOf[v.Device]] = c
	}
	for _, a := range r.activations {
		c := sites[siteOf[a.Device]]
		c.Activations++
		sites[siteOf[a.Device]] = c
	}
	return sites
}

func TestRunAgainstRealBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real edge agents for several seconds")
	}
	broker := startBroker(t)
	got := subscribe(t, broker)

	m := Generate(Spec{Seed: 11, Orgs: 2, SitesPerOrg: 2, CountersPerSite: 2})
	opts := Options{
		Broker: broker, DataDir: t.TempDir(),
		ServiceInterval: 100 * time.Millisecond, Window: time.Second,
		Participation: 0.7, StrayPresses: 0.2, MaxActivations: 8,
		DrainTimeout: 20 * time.Second,
		NewKeypadOptions: func(Device) keypad.Options {
			return keypad.Options{ResendEvery: 100 * time.Millisecond}
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	tally, err := Run(ctx, m, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	total := tally.Total()
	if total.Activations != 8*8 || total.Unsure != 0 || total.Votes == 0 || total.Invalid == 0 {
		t.Fatalf("tally total = %+v", total)
	}

	t.Logf("tally: %+v", total)

	// Run returned after every outbox was confirmed by the broker; delivery
	// to the subscriber may trail by a moment.
	want := tally.Sites()
	deadline := time.Now().Add(10 * time.Second)
	for {
		have := got.bySite(m)
		if equalCounts(have, want) {
			break
		}
		if time.Now().After(deadline) {
			for site := range want {
				if have[site] != want[site] {
					t.Errorf("site %s: received %+v, tally %+v", site, have[site], want[site])
				}
			}
			t.FailNow()
		}
		time.Sleep(20 * time.Millisecond)
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	if got.bad != 0 {
		t.Fatalf("%d messages did not decode", got.bad)
	}
}

func equalCounts(a, b map[string]Counts) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
