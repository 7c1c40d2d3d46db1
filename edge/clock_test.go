package edge

import (
	"bytes"
	"testing"
	"time"

	"github.com/semko/semko/edge/outbox"
	"github.com/semko/semko/internal/testwait"
	"github.com/semko/semko/protocol"
)

// fastClock is a wall clock 6 minutes ahead of the true time.
func fastClock() time.Time { return time.Now().Add(6 * time.Minute) }

// A press made before the agent has the backend's time waits unstamped in
// the outbox, connected or not, and is stamped from the first beacon by the
// monotonic clock: its ts is the true press time, whatever the wall clock
// said. Later presses are stamped on the backend's time at once.
func TestPressBeforeTimeReference(t *testing.T) {
	rec := &recorder{}
	b := startBrokerBeacon(t, "127.0.0.1:0", rec, false)
	a := startAgent(t, Config{Broker: b.url(), DataDir: t.TempDir(), Now: fastClock,
		Defaults: protocol.Config{Mode: protocol.ModeAlwaysOn}})
	testwait.For(t, "connected", func() bool { return a.Stats().Connected })
	pressed := time.Now()
	a.kp.press(t, 4, 1)
	a.kp.expect(t, protocol.FrameTaken)
	if got := a.Stats().Outbox; got != 1 {
		t.Fatalf("outbox %d, want the press", got)
	}

	b.beat.Add(1)
	go func() { defer b.beat.Done(); b.beacons(time.Now) }()
	testwait.For(t, "vote published", func() bool { return len(rec.votes(t)) == 1 })
	pressed2 := time.Now()
	a.kp.press(t, 5, 2)
	a.kp.expect(t, protocol.FrameTaken)
	testwait.For(t, "second vote published", func() bool { return len(rec.votes(t)) == 2 })

	for _, p := range rec.of(protocol.KindVote) {
		if bytes.Contains(p, []byte("edge_")) {
			t.Errorf("outbox marker published: %s", p)
		}
	}
	votes := rec.votes(t)
	for seq, at := range map[uint64]time.Time{1: pressed, 2: pressed2} {
		v := votes[seq]
		if d := v.Time.Sub(at); d < -time.Second || d > time.Second || v.Clock != "" {
			t.Errorf("vote %d: ts %s clock %q, pressed %s (%s off)", seq, v.Time, v.Clock, at, d)
		}
	}
}

// A press left unstamped by a boot that never got the backend's time
// cannot be stamped by the next boot (monotonic readings do not survive a
// restart): it goes out with the wall clock's time at the press, marked
// clock "local". One whose boot did get a reference before the restart is
// stamped from it.
func TestUnstampedAcrossRestart(t *testing.T) {
	rec := &recorder{}
	b := startBrokerBeacon(t, "127.0.0.1:0", rec, false)
	addr := b.addr
	b.stop()
	dir := t.TempDir()

	a1 := startAgent(t, Config{Broker: "tcp://" + addr, DataDir: dir, Now: fastClock})
	pressed := time.Now()
	a1.kp.press(t, 3, 1)
	a1.kp.expect(t, protocol.FrameTaken)
	a1.stop()

	startBroker(t, addr, rec)
	a2 := startAgent(t, Config{Broker: "tcp://" + addr, DataDir: dir, Now: fastClock})
	testwait.For(t, "published", func() bool { return a2.Stats().Outbox == 0 && len(rec.votes(t)) == 1 })
	v := rec.votes(t)[1]
	if v.Clock != protocol.ClockLocal {
		t.Errorf("vote from a boot without a reference: clock %q, want %q", v.Clock, protocol.ClockLocal)
	}
	if d := v.Time.Sub(pressed) - 6*time.Minute; d < -time.Second || d > time.Second {
		t.Errorf("vote ts %s, want the fast wall clock at the press (%s off)", v.Time, d)
	}
}

// The first reference of a boot is durable, so an entry of that boot is
// stamped the same after a restart: the ts never changes between
// deliveries.
func TestStampFromStoredReference(t *testing.T) {
	dir := t.TempDir()
	ref := timeRef{Boot: "b-old", MonoNS: int64(10 * time.Second), Backend: time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)}
	if err := saveTimeRefs(dir, []timeRef{ref}); err != nil {
		t.Fatal(err)
	}
	refs, err := loadTimeRefs(dir)
	if err != nil || len(refs) != 1 || !refs[0].Backend.Equal(ref.Backend) {
		t.Fatalf("load %v %v", refs, err)
	}
	a := &Agent{bootID: "b-new"}
	a.clk.firsts = refs
	v := protocol.SampleVote()
	v.Time = time.Date(1970, 1, 1, 0, 0, 1, 0, time.UTC) // a box without a clock battery
	data, err := protocol.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	data = markUnstamped(data, "b-old", 12*time.Second)
	for range 2 {
		out, ok, err := a.publishable(outboxEntry(protocol.KindVote, data))
		if err != nil || !ok {
			t.Fatalf("publishable: %v %v", ok, err)
		}
		got, err := protocol.Decode[protocol.Vote](out)
		if err != nil {
			t.Fatal(err)
		}
		if want := ref.Backend.Add(2 * time.Second); !got.Time.Equal(want) || got.Clock != "" {
			t.Errorf("stamped %s clock %q, want %s", got.Time, got.Clock, want)
		}
	}
}

func outboxEntry(kind protocol.Kind, data []byte) outbox.Entry {
	return outbox.Entry{Seq: 1, Kind: kind, Data: data}
}

// The round trip taken as the beacon's latency is the least recent one:
// a PUBACK held up by the backend's fsync does not shift the stamps.
func TestRTTLeastRecent(t *testing.T) {
	a := &Agent{}
	for _, ms := range []int{40, 900, 12, 300} {
		a.addRTT(time.Duration(ms) * time.Millisecond)
	}
	if a.clk.rtt != 12*time.Millisecond {
		t.Fatalf("rtt %s, want 12ms", a.clk.rtt)
	}
	for range rttSamples {
		a.addRTT(50 * time.Millisecond)
	}
	if a.clk.rtt != 50*time.Millisecond {
		t.Fatalf("rtt %s after the 12 ms sample aged out, want 50ms", a.clk.rtt)
	}
}
