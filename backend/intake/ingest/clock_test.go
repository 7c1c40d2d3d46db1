package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/semko/semko/protocol"
)

// A vote whose ts is out of range is kept apart, counted per device, and
// still overwrites itself on redelivery; before, it was discarded as
// "clock".
func TestVoteOutOfRangeHeldApart(t *testing.T) {
	for _, tt := range []struct {
		name string
		ts   time.Time
	}{
		{"6 minutes fast", now.Add(6 * time.Minute)},
		{"40 days slow", now.Add(-40 * 24 * time.Hour)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			v := protocol.SampleVote()
			v.Time = tt.ts
			for range 2 { // the second is a redelivery
				if err := f.in.Accept(t.Context(), topic(protocol.KindVote), mustJSON(t, v), now); err != nil {
					t.Fatalf("vote out of range not accepted: %v", err)
				}
			}
			lines := f.spool.lines()
			if len(lines) != 1 {
				t.Fatalf("spooled %d lines, want 1: %q", len(lines), lines)
			}
			if !strings.HasPrefix(lines[0], "vote_held,") || !strings.HasSuffix(lines[0], " "+itoa(tt.ts.UnixNano())) {
				t.Errorf("held vote line %q: want measurement vote_held at its own ts", lines[0])
			}
			if got := testutil.ToFloat64(f.in.m.clockHeld.WithLabelValues("vote")); got != 1 {
				t.Errorf("clock_held_total{vote} = %v, want 1", got)
			}
			if s := f.in.Snapshot(); s.Rejected != 0 || s.VotesLastMinute != 0 {
				t.Errorf("summary %+v: want nothing rejected and the held vote not counted as a rating", s)
			}
			c := f.in.Devices()[0].Clock
			if c.Held != 1 || !c.HeldLast.Equal(now) || c.HeldOffsetMS != tt.ts.Sub(now).Milliseconds() {
				t.Errorf("clock state %+v", c)
			}
		})
	}
}

// Heartbeats and births from a wrong clock are taken at their arrival,
// and the heartbeat tells the device's clock offset net of latency.
func TestHeartbeatClockMeasured(t *testing.T) {
	f := newFixture(t, nil)
	birth := protocol.Status{V: 1, Device: "kp-0001", Time: now.Add(time.Hour), BootID: "b", Online: true, BDSeq: 1}
	if err := f.in.Accept(t.Context(), topic(protocol.KindStatus), mustJSON(t, birth), now); err != nil {
		t.Fatalf("birth from a fast clock: %v", err)
	}
	h := protocol.SampleHeartbeat()
	h.Time = now.Add(time.Hour) // an edge that never got the backend's time
	h.RTTMS, h.TimeSynced, h.TimeOffsetMS = 400, false, 0
	if err := f.in.Accept(t.Context(), topic(protocol.KindHeartbeat), mustJSON(t, h), now); err != nil {
		t.Fatalf("heartbeat from a fast clock: %v", err)
	}
	for _, l := range f.spool.lines() {
		if !strings.HasSuffix(l, " "+itoa(now.UnixNano())) {
			t.Errorf("point not at arrival: %q", l)
		}
	}
	c := f.in.Devices()[0].Clock
	want := (time.Hour + 200*time.Millisecond).Milliseconds()
	if !c.Measured || c.OffsetMS != want || c.Synced {
		t.Errorf("clock %+v, want offset %d ms, not synced", c, want)
	}
	// Synced: its ts is on the backend's time, its own clock still off.
	h.Time, h.TimeSynced, h.TimeOffsetMS = now.Add(-200*time.Millisecond), true, -time.Hour.Milliseconds()
	if err := f.in.Accept(t.Context(), topic(protocol.KindHeartbeat), mustJSON(t, h), now.Add(time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	c = f.in.Devices()[0].Clock
	if !c.Synced || c.OffsetMS != time.Hour.Milliseconds()-1 || c.StampErrorMS != -1 {
		t.Errorf("clock %+v", c)
	}
}
