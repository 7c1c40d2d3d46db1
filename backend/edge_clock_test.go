package backend_test

import (
	"context"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/health/diagnostics"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/edge"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/firmware-sim/keypad"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/testwait"
	"github.com/semko/semko/protocol"
)

// skewedClock is an edge's wall clock: the true time plus a skew the test
// sets, stepping it like NTP or a person would.
type skewedClock struct{ skew atomic.Int64 }

func (c *skewedClock) Now() time.Time             { return time.Now().Add(time.Duration(c.skew.Load())) }
func (c *skewedClock) set(d time.Duration)        { c.skew.Store(int64(d)) }
func newSkewedClock(d time.Duration) *skewedClock { c := &skewedClock{}; c.set(d); return c }

// clockEdge is one edge with a wrong clock and the true times of its presses.
type clockEdge struct {
	name    string
	dev     fleet.Device
	clock   *skewedClock
	kp      *keypad.Keypad
	agent   *edge.Agent
	stop    func()
	presses []time.Time
}

// Three edges with wrong clocks, through the real broker and InfluxDB: one
// 6 minutes fast, one 3 days slow after boot that steps to the right time
// mid-run, one whose clock jumps back an hour between two presses. Each
// presses first while the backend is down (no time reference yet: the
// press waits unstamped), then with the reference, then after its clock is
// right again. Every press lands exactly once within a second of when it
// happened, edge_clock is raised for each and resolved, and a vote
// delivered again after the correction overwrites itself.
func TestEdgeClockWrong(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts InfluxDB")
	}
	db := influxlocal.StartForTest(t)
	model := fleet.Generate(fleet.Spec{Seed: 17, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 3})
	cfg := newTestConfig(t, model, db)
	cfg.MQTT.Addr = freeAddr(t) // the edges start before the backend
	cfg.MQTT.TimeBeacon = 100 * time.Millisecond
	cfg.Diagnostics.Schedule = map[string]string{diagnostics.CheckEdgeClock: "off"} // run by the test
	hash, err := broker.HashSecret("watch-secret")
	if err != nil {
		t.Fatal(err)
	}
	// Reading the device tree takes a backend account: observers read alerts only.
	cfg.MQTT.Accounts = []broker.Credential{{Username: "watch", Hash: hash, Role: broker.RoleBackend}}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	edges := []*clockEdge{
		{name: "6 minutes fast", clock: newSkewedClock(6 * time.Minute)},
		{name: "3 days slow", clock: newSkewedClock(-72 * time.Hour)},
		{name: "jumps back", clock: newSkewedClock(0)},
	}
	for i, e := range edges {
		e.dev = model.Devices[i]
		ectx, stop := context.WithCancel(ctx)
		e.stop = stop
		e.kp, e.agent = startEdge(t, ectx, edge.Config{
			Device: e.dev.ID, Secret: e.dev.Secret, Broker: "tcp://" + cfg.MQTT.Addr, DataDir: t.TempDir(),
			ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond,
			Defaults: protocol.Config{Mode: protocol.ModeAlwaysOn, HeartbeatS: 1},
			Now:      e.clock.Now, Logger: testLogger(t),
		}, keypad.Options{Serial: e.dev.Serial})
	}
	press := func(e *clockEdge, key int) {
		t.Helper()
		at := time.Now()
		if err := e.kp.Press(ctx, key); err != nil {
			t.Fatalf("%s: press: %v", e.name, err)
		}
		e.presses = append(e.presses, at)
	}

	// 1. No backend: each press waits in the outbox without a trusted time.
	for _, e := range edges {
		press(e, 1)
		if s := e.agent.Stats(); s.Presses != 1 || s.Outbox != 1 {
			t.Fatalf("%s: stats %+v, want the press held", e.name, s)
		}
	}
	time.Sleep(300 * time.Millisecond) // the presses age on the edges' clocks

	// 2. The backend comes: the edges get its time and send the presses.
	app := newApp(t, cfg, testLogger(t))
	stopApp := startApp(t, app)
	watched := watchVotes(t, app.MQTTAddr())
	for _, e := range edges {
		testwait.For(t, e.name+": outbox sent", func() bool { return e.agent.Stats().Outbox == 0 })
	}
	diag := app.Diagnostics()
	openFor := func() map[string]bool {
		t.Helper()
		if err := diag.CheckNow(ctx, diagnostics.CheckEdgeClock); err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, f := range diag.Open() {
			if f.Kind == alert.KindEdgeClock {
				out[f.Subject.Device] = true
			}
		}
		return out
	}
	fast, slow, jumpy := edges[0], edges[1], edges[2]
	testwait.For(t, "edge_clock for the fast and the slow edge", func() bool {
		o := openFor()
		return o[fast.dev.ID] && o[slow.dev.ID] && !o[jumpy.dev.ID]
	})

	// 3. With the reference: the jumpy edge's clock steps back an hour
	// between two presses.
	for _, e := range edges {
		press(e, 2)
	}
	jumpy.clock.set(-time.Hour)
	press(jumpy, 3)
	testwait.For(t, "edge_clock for all three", func() bool {
		o := openFor()
		return o[fast.dev.ID] && o[slow.dev.ID] && o[jumpy.dev.ID]
	})

	// 4. Clocks right again (the slow one by an NTP step): resolved.
	for _, e := range edges {
		e.clock.set(0)
	}
	testwait.For(t, "edge_clock resolved", func() bool { return len(openFor()) == 0 })
	for _, e := range edges {
		press(e, 4)
	}

	// Every press exactly once, within a second of when it happened.
	want := 0
	for _, e := range edges {
		want += len(e.presses)
		testwait.For(t, e.name+": outbox sent", func() bool { return e.agent.Stats().Outbox == 0 })
	}
	waitWritten(t, app)
	for _, e := range edges {
		checkVoteTimes(t, ctx, db, e)
	}
	if held, err := db.Query(ctx, `SELECT count(score) FROM vote_held`); err != nil || len(held) != 0 {
		t.Errorf("votes held apart: %v %v", held, err)
	}

	// 5. A redelivery after the correction: the fast edge's last vote
	// again, as published, to a backend that has forgotten it (restarted):
	// it overwrites itself.
	last := watched.wait(t, fast.dev.ID, 4)
	fast.stop()
	if err := stopApp(); err != nil {
		t.Fatalf("backend run: %v", err)
	}
	app = newApp(t, cfg, testLogger(t))
	startApp(t, app)
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + app.MQTTAddr()).
		SetClientID(fast.dev.ID).SetUsername(fast.dev.ID).SetPassword(fast.dev.Secret).SetProtocolVersion(4))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect as %s: %v", fast.dev.ID, tok.Error())
	}
	defer c.Disconnect(0)
	if tok := c.Publish(protocol.DeviceTopic(fast.dev.ID, protocol.KindVote), 1, false, last); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("redeliver: %v", tok.Error())
	}
	if s := app.Summary(); s.Accepted == 0 || s.Duplicates != 0 {
		t.Fatalf("summary %+v: want the redelivery accepted as new (the restarted backend has forgotten it)", s)
	}
	waitWritten(t, app)
	checkVoteTimes(t, ctx, db, fast)
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// checkVoteTimes asserts that e's votes in InfluxDB are its presses: as
// many, each within a second of the true time of one.
func checkVoteTimes(t *testing.T, ctx context.Context, db *influxlocal.Server, e *clockEdge) {
	t.Helper()
	series, err := db.Query(ctx, `SELECT score FROM vote WHERE device='`+e.dev.ID+`'`)
	if err != nil {
		t.Fatal(err)
	}
	var got []time.Time
	for _, s := range series {
		for i := range s.Values {
			ns, err := s.Int(i, "time")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, time.Unix(0, ns))
		}
	}
	slices.SortFunc(got, func(a, b time.Time) int { return a.Compare(b) })
	if len(got) != len(e.presses) {
		t.Fatalf("%s: %d votes in InfluxDB, want %d (one per press): %v", e.name, len(got), len(e.presses), got)
	}
	for i, ts := range got {
		if d := ts.Sub(e.presses[i]); d < -time.Second || d > time.Second {
			t.Errorf("%s: vote %d at %s, pressed at %s (%s off)", e.name, i+1, ts.UTC().Format(time.RFC3339Nano),
				e.presses[i].UTC().Format(time.RFC3339Nano), d)
		}
	}
}

// voteWatch keeps the votes a second backend client sees, as published.
type voteWatch struct {
	mu   sync.Mutex
	last map[string][]byte
}

func watchVotes(t *testing.T, addr string) *voteWatch {
	t.Helper()
	w := &voteWatch{last: map[string][]byte{}}
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID("watch-1").SetUsername("watch").SetPassword("watch-secret").SetProtocolVersion(4))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	tok := c.Subscribe(protocol.UpstreamFilter(protocol.KindVote), 1, func(_ paho.Client, m paho.Message) {
		if tp, err := protocol.ParseTopic(m.Topic()); err == nil {
			w.mu.Lock()
			w.last[tp.Device] = append([]byte(nil), m.Payload()...)
			w.mu.Unlock()
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher subscribe: %v", tok.Error())
	}
	return w
}

// wait returns the last vote of device seen, once it has the score.
func (w *voteWatch) wait(t *testing.T, device string, score int) []byte {
	t.Helper()
	var b []byte
	testwait.For(t, "the vote seen", func() bool {
		w.mu.Lock()
		b = w.last[device]
		w.mu.Unlock()
		v, err := protocol.Decode[protocol.Vote](b)
		return err == nil && v.Score == score
	})
	return b
}
