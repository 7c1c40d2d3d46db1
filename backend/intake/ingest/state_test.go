package ingest

import (
	"fmt"
	"testing"
	"time"

	"github.com/semko/semko/backend/fleet/live"
	"github.com/semko/semko/protocol"
)

func TestHeartbeatInterval(t *testing.T) {
	f := newFixture(t, nil)
	send := func(boot string, at time.Time) {
		t.Helper()
		h := protocol.SampleHeartbeat()
		h.BootID, h.Time = boot, at
		if err := f.in.Accept(t.Context(), topic(protocol.KindHeartbeat), mustJSON(t, h), at); err != nil {
			t.Fatal(err)
		}
	}
	send("b-1", now)
	send("b-1", now.Add(30*time.Second))
	if got := f.in.Devices()[0].HeartbeatEvery; got != 30*time.Second {
		t.Fatalf("interval %v, want 30s", got)
	}
	// A new boot's first heartbeat says nothing about the interval.
	send("b-2", now.Add(45*time.Second))
	st := f.in.Devices()[0]
	if st.HeartbeatEvery != 30*time.Second || !st.HeartbeatReceived.Equal(now.Add(45*time.Second)) {
		t.Fatalf("after reboot: every %v received %v", st.HeartbeatEvery, st.HeartbeatReceived)
	}
	if st.Health.Presses != protocol.SampleHeartbeat().Presses || !st.Health.PanelOK {
		t.Fatalf("health not kept: %+v", st.Health)
	}
}

func TestActivityStreak(t *testing.T) {
	tests := []struct {
		name       string
		voted      []bool // closed records in order
		wantStreak int
		wantVoted  uint64
	}{
		{"none", nil, 0, 0},
		{"all unvoted", []bool{false, false, false}, 3, 0},
		{"vote resets", []bool{false, false, true, false}, 1, 1},
		{"ends voted", []bool{false, true}, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			for n, v := range tc.voted {
				a := protocol.SampleActivationRecord()
				a.Seq, a.ID, a.Voted = uint64(n+1), fmt.Sprintf("act-%d", n), v
				at := now.Add(time.Duration(n) * time.Minute)
				for range 2 { // the redelivery must not count twice
					if err := f.in.Accept(t.Context(), topic(protocol.KindActivation), mustJSON(t, a), at); err != nil {
						t.Fatal(err)
					}
				}
			}
			act := f.in.Devices()[0].Activity
			if act.Closed != uint64(len(tc.voted)) || act.Voted != tc.wantVoted || act.UnvotedStreak != tc.wantStreak {
				t.Fatalf("activity %+v", act)
			}
			if tc.wantStreak > 0 {
				first := now.Add(time.Duration(len(tc.voted)-tc.wantStreak) * time.Minute)
				if !act.UnvotedSince.Equal(first) {
					t.Fatalf("unvoted since %v, want %v", act.UnvotedSince, first)
				}
			}
		})
	}
}

func TestCommandResultsBounded(t *testing.T) {
	f := newFixture(t, nil)
	for n := range live.MaxCommandResults + 3 {
		c := protocol.SampleCommandResult()
		c.ID = fmt.Sprintf("cmd-%d", n)
		if err := f.in.Accept(t.Context(), topic(protocol.KindCommandResult), mustJSON(t, c), now); err != nil {
			t.Fatal(err)
		}
	}
	st := f.in.Devices()[0]
	if len(st.Commands) != live.MaxCommandResults {
		t.Fatalf("%d results kept", len(st.Commands))
	}
	if _, ok := st.Command("cmd-0"); ok {
		t.Fatal("oldest result not dropped")
	}
	last := fmt.Sprintf("cmd-%d", live.MaxCommandResults+2)
	if c, ok := st.Command(last); !ok || !c.OK || c.Detail["keys"] != "11111" {
		t.Fatalf("newest result %+v %v", c, ok)
	}
}
