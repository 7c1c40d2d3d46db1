package edge

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/internal/testwait"
	"github.com/semko/semko/protocol"
)

func activate(id string) protocol.Activate {
	return protocol.Activate{V: protocol.Version, ID: id, Service: "passport", Operator: "op-017", ServiceS: 312, Ticket: "A-1"}
}

func TestActivateAndVote(t *testing.T) {
	rec := &recorder{}
	b := startBroker(t, "127.0.0.1:0", rec)
	a := startAgent(t, Config{Broker: b.url(), DataDir: t.TempDir()})
	ctx := context.Background()

	before := time.Now()
	if err := a.Activate(ctx, activate("act-1")); err != nil {
		t.Fatal(err)
	}
	if arm := a.kp.expect(t, protocol.FrameArm); arm.Args[0] != "20000" {
		t.Fatalf("ARM %v, want the default 20 s window", arm.Args)
	}
	// A repeated activation id is ignored.
	if err := a.Activate(ctx, activate("act-1")); err != nil {
		t.Fatal(err)
	}
	a.kp.press(t, 4, 77)
	if taken := a.kp.expect(t, protocol.FrameTaken); taken.Args[0] != "77" {
		t.Fatalf("TAKEN %v", taken.Args)
	}
	a.kp.expect(t, protocol.FrameDisarm)
	// The keypad did not hear TAKEN in time and resends: no second vote.
	a.kp.press(t, 4, 77)
	a.kp.expect(t, protocol.FrameTaken)

	testwait.For(t, "vote and closing record confirmed", func() bool {
		s := a.Stats()
		return s.Outbox == 0 && s.Confirmed >= 3
	})
	votes := rec.votes(t)
	if len(votes) != 1 {
		t.Fatalf("%d votes, want 1: %v", len(votes), votes)
	}
	var v protocol.Vote
	for _, v = range votes {
	}
	if !v.Valid || v.Score != 4 || v.Activation != "act-1" || v.Service != "passport" || v.Operator != "op-017" ||
		v.ServiceS != 312 || v.Device != "kp-0001" || v.Channel != protocol.ChannelKeypad || v.Time.Before(before.Truncate(time.Millisecond)) {
		t.Fatalf("vote %+v", v)
	}
	acts := rec.activations(t)
	if len(acts) < 2 {
		t.Fatalf("activation records %+v", acts)
	}
	open, closed := acts[0], acts[len(acts)-1]
	if open.Closed || !closed.Closed || !closed.Voted || !open.Time.Equal(closed.Time) || open.WindowS != 20 {
		t.Fatalf("records open %+v closed %+v", open, closed)
	}
	if v.LatencyMS < 0 || v.Time.Sub(open.Time) < time.Duration(v.LatencyMS)*time.Millisecond-time.Millisecond {
		t.Fatalf("latency %d ms for vote at %v, window at %v", v.LatencyMS, v.Time, open.Time)
	}
	s := a.Stats()
	if s.VotesValid != 1 || s.DuplicatePresses != 1 || s.Activations != 1 || !s.Connected {
		t.Fatalf("stats %+v", s)
	}
}

func TestInvalidPresses(t *testing.T) {
	rec := &recorder{}
	b := startBroker(t, "127.0.0.1:0", rec)
	a := startAgent(t, Config{Broker: b.url(), DataDir: t.TempDir()})

	a.kp.press(t, 1, 1) // nothing open
	a.kp.expect(t, protocol.FrameTaken)
	if err := a.Activate(context.Background(), activate("act-2")); err != nil {
		t.Fatal(err)
	}
	a.kp.press(t, 5, 2) // the vote
	a.kp.expect(t, protocol.FrameTaken)
	a.kp.press(t, 5, 3) // again, same customer
	a.kp.expect(t, protocol.FrameTaken)

	testwait.For(t, "three votes", func() bool { return len(rec.votes(t)) == 3 })
	votes := rec.votes(t)
	var got []string
	for seq := uint64(1); seq < 10; seq++ {
		if v, ok := votes[seq]; ok {
			got = append(got, fmt.Sprintf("%d:%v:%s:%s", v.Score, v.Valid, v.Reason, v.Activation))
		}
	}
	want := "[1:false:no_activation: 5:true::act-2 5:false:repeat:act-2]"
	if fmt.Sprint(got) != want {
		t.Fatalf("votes %v, want %s", got, want)
	}
}

// TestBrokerDown presses while the broker is away: every vote is kept and
// published once it is back, none lost.
func TestBrokerDown(t *testing.T) {
	rec := &recorder{}
	b := startBroker(t, "127.0.0.1:0", rec)
	a := startAgent(t, Config{Broker: b.url(), DataDir: t.TempDir()})
	testwait.For(t, "connected", func() bool { return a.Stats().Connected })

	b.stop()
	testwait.For(t, "disconnected", func() bool { return !a.Stats().Connected })
	const n = 25
	for i := range n {
		if err := a.Activate(context.Background(), activate(fmt.Sprintf("act-%d", i))); err != nil {
			t.Fatal(err)
		}
		a.kp.press(t, i%5+1, uint32(100+i))
		a.kp.expect(t, protocol.FrameTaken)
	}
	if got := a.Stats().Outbox; got != 2*n+n {
		t.Fatalf("outbox %d, want %d (open + vote + close per activation)", got, 3*n)
	}
	startBroker(t, b.addr, rec)
	testwait.For(t, "backlog published", func() bool { return a.Stats().Outbox == 0 })
	votes := rec.votes(t)
	if len(votes) != n {
		t.Fatalf("%d distinct votes, want %d", len(votes), n)
	}
	for _, v := range votes {
		if !v.Valid {
			t.Fatalf("vote %+v", v)
		}
	}
}

// TestRestart kills an agent with votes unpublished and starts another on
// the same data dir: the backlog goes out, sequence numbers keep growing.
func TestRestart(t *testing.T) {
	rec := &recorder{}
	b := startBroker(t, "127.0.0.1:0", rec)
	addr := b.addr
	b.stop()
	dir := t.TempDir()

	a1 := startAgent(t, Config{Broker: "tcp://" + addr, DataDir: dir})
	for i := range 5 {
		a1.kp.press(t, 3, uint32(i+1))
		a1.kp.expect(t, protocol.FrameTaken)
	}
	a1.stop()

	startBroker(t, addr, rec)
	a2 := startAgent(t, Config{Broker: "tcp://" + addr, DataDir: dir})
	a2.kp.press(t, 2, 1) // the keypad rebooted too: kseq 1 again is a new press
	a2.kp.expect(t, protocol.FrameTaken)
	testwait.For(t, "all published", func() bool { return a2.Stats().Outbox == 0 && len(rec.votes(t)) == 6 })
	votes := rec.votes(t)
	for seq := uint64(1); seq <= 6; seq++ {
		if _, ok := votes[seq]; !ok {
			t.Fatalf("vote seq %d missing: %v", seq, votes)
		}
	}
	// Every connection attempt of a1 (all failed) raised bdseq, and a2
	// carried on from the persisted value.
	var births []protocol.Status
	for _, p := range rec.of(protocol.KindStatus) {
		s, err := protocol.Decode[protocol.Status](p)
		if err != nil {
			t.Fatal(err)
		}
		if s.Online {
			births = append(births, s)
		}
	}
	if len(births) != 1 || births[0].BDSeq < 2 {
		t.Fatalf("births %+v, want one with bdseq > 1", births)
	}
}

func TestConfigApplied(t *testing.T) {
	rec := &recorder{}
	b := startBroker(t, "127.0.0.1:0", rec)
	dir := t.TempDir()
	cfg := protocol.SampleConfig()
	cfg.Backlight = protocol.Backlight{Level: 55}
	cfg.VoteWindowS = 7
	b.publish(t, protocol.DeviceTopic("kp-0001", protocol.KindConfig), cfg, true)

	a := startAgent(t, Config{Broker: b.url(), DataDir: dir})
	testwait.For(t, "config applied", func() bool { return len(rec.of(protocol.KindConfigApplied)) > 0 })
	ans, err := protocol.Decode[protocol.ConfigApplied](rec.of(protocol.KindConfigApplied)[0])
	if err != nil || !ans.OK || ans.Version != "org-3" {
		t.Fatalf("answer %+v err %v", ans, err)
	}
	if p := a.kp.expect(t, protocol.FramePanel); p.Args[0] != cfg.Panel.Texts["bg"] {
		t.Fatalf("panel %q", p.Args)
	}
	testwait.For(t, "light 55", func() bool {
		f := a.kp.expect(t, protocol.FrameLight)
		return f.Args[0] == "55"
	})
	if err := a.Activate(context.Background(), activate("act-c")); err != nil {
		t.Fatal(err)
	}
	if arm := a.kp.expect(t, protocol.FrameArm); arm.Args[0] != "7000" {
		t.Fatalf("ARM %v, want the configured 7 s", arm.Args)
	}
	if got, ok, _ := loadConfig(dir); !ok || got.Version != "org-3" {
		t.Fatalf("persisted config %+v %v", got, ok)
	}

	bad := cfg
	bad.Version, bad.Mode = "org-4", "sometimes"
	b.publish(t, protocol.DeviceTopic("kp-0001", protocol.KindConfig), bad, true)
	testwait.For(t, "refusal", func() bool { return len(rec.of(protocol.KindConfigApplied)) > 1 })
	ans, err = protocol.Decode[protocol.ConfigApplied](rec.of(protocol.KindConfigApplied)[1])
	if err != nil || ans.OK || ans.Version != "org-4" || ans.Error == "" {
		t.Fatalf("refusal %+v err %v", ans, err)
	}
	if a.Stats().Config != "org-3" {
		t.Fatalf("bad config replaced the good one: %+v", a.Stats())
	}
}

func TestCommands(t *testing.T) {
	rec := &recorder{}
	b := startBroker(t, "127.0.0.1:0", rec)
	a := startAgent(t, Config{Broker: b.url(), DataDir: t.TempDir(), CommandTimeout: 300 * time.Millisecond})
	cmdTopic := protocol.DeviceTopic("kp-0001", protocol.KindCommand)
	testwait.For(t, "subscribed", func() bool { return b.subscribed(cmdTopic) })

	results := func() []protocol.CommandResult {
		var out []protocol.CommandResult
		for _, p := range rec.of(protocol.KindCommandResult) {
			r, err := protocol.Decode[protocol.CommandResult](p)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	tests := []struct {
		name    string
		cmd     string
		answer  *protocol.Frame
		wantOK  bool
		wantErr string
		detail  string
	}{
		{name: "selftest pass", cmd: protocol.CommandSelfTest, wantOK: true, detail: "keys=11011",
			answer: &protocol.Frame{Type: protocol.FrameTest, Args: []string{"PASS", "1", "1", "11011"}}},
		{name: "selftest no answer", cmd: protocol.CommandSelfTest, wantErr: "no answer"},
		{name: "info", cmd: protocol.CommandInfo, wantOK: true, detail: "fw=2.0.1",
			answer: &protocol.Frame{Type: protocol.FrameInfo, Args: []string{"2.0.1", "SK5-9", "SK5", fmt.Sprint(time.Now().UnixMilli())}}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := protocol.Command{V: protocol.Version, ID: fmt.Sprintf("cmd-%d", i), Name: tt.cmd, Time: time.Now()}
			b.publish(t, cmdTopic, cmd, false)
			req := protocol.FrameTest
			if tt.cmd == protocol.CommandInfo {
				req = protocol.FrameInfo
			}
			a.kp.expect(t, req)
			if tt.answer != nil {
				a.kp.send(t, *tt.answer)
			}
			var res protocol.CommandResult
			testwait.For(t, "result", func() bool {
				for _, r := range results() {
					if r.ID == cmd.ID {
						res = r
						return true
					}
				}
				return false
			})
			if res.OK != tt.wantOK || !strings.Contains(res.Error, tt.wantErr) {
				t.Fatalf("result %+v", res)
			}
			if k, v, ok := strings.Cut(tt.detail, "="); ok && res.Detail[k] != v {
				t.Fatalf("detail %v, want %s", res.Detail, tt.detail)
			}
		})
	}
}

func TestHeartbeat(t *testing.T) {
	rec := &recorder{}
	b := startBroker(t, "127.0.0.1:0", rec)
	a := startAgent(t, Config{Broker: b.url(), DataDir: t.TempDir(), Defaults: protocol.Config{HeartbeatS: 1}})
	a.kp.send(t, protocol.DeviceInfo{FW: "1.4.2", Serial: "SK5-1", Model: "SK5"}.BootFrame())
	a.kp.send(t, protocol.Frame{Type: protocol.FrameErr, Args: []string{"light", "no current"}})
	a.kp.press(t, 5, 1)
	a.kp.expect(t, protocol.FrameTaken)
	var hb protocol.Heartbeat
	testwait.For(t, "a heartbeat after the press", func() bool {
		for _, p := range rec.of(protocol.KindHeartbeat) {
			h, err := protocol.Decode[protocol.Heartbeat](p)
			if err != nil {
				t.Fatal(err)
			}
			if h.Presses[4] == 1 {
				hb = h
				return true
			}
		}
		return false
	})
	if hb.FW != "1.4.2" || hb.BacklightOK || !hb.PanelOK || hb.Errors != 1 || hb.Config != "default" {
		t.Fatalf("heartbeat %+v", hb)
	}
}

// TestOutboxFull: with the outbox full the keypad hears nothing and keeps
// its press; once the broker drains the outbox, the resend is stored.
func TestOutboxFull(t *testing.T) {
	rec := &recorder{}
	b := startBroker(t, "127.0.0.1:0", rec)
	b.stop()
	a := startAgent(t, Config{Broker: b.url(), DataDir: t.TempDir(), OutboxMaxBytes: 1500})
	kseq := uint32(0)
	for a.Stats().OutboxFull == 0 {
		kseq++
		a.kp.press(t, 1, kseq)
		testwait.For(t, "taken or refused", func() bool {
			return a.Stats().OutboxFull > 0 || a.Stats().Presses == uint64(kseq)
		})
		if kseq > 100 {
			t.Fatal("outbox never full")
		}
	}
	stored := a.Stats().Presses
	if stored != uint64(kseq-1) {
		t.Fatalf("%d stored of %d presses", stored, kseq)
	}
	startBroker(t, b.addr, rec)
	testwait.For(t, "drained", func() bool { return a.Stats().Outbox == 0 })
	a.kp.press(t, 1, kseq) // the keypad's resend
	testwait.For(t, "resend stored", func() bool { return len(rec.votes(t)) == int(kseq) })
	for {
		f := a.kp.expect(t, protocol.FrameTaken)
		if f.Args[0] == fmt.Sprint(kseq) {
			break
		}
	}
}

// TestHeartbeatReportsLinkRSSI: a unit on a radio link reports its signal
// in every heartbeat (the fleet dashboard's link quality panel reads it).
func TestHeartbeatReportsLinkRSSI(t *testing.T) {
	rec := &recorder{}
	b := startBroker(t, "127.0.0.1:0", rec)
	startAgent(t, Config{Broker: b.url(), DataDir: t.TempDir(), Defaults: protocol.Config{HeartbeatS: 1},
		LinkRSSI: func() int { return -67 }})
	testwait.For(t, "a heartbeat with the link's RSSI", func() bool {
		for _, p := range rec.of(protocol.KindHeartbeat) {
			h, err := protocol.Decode[protocol.Heartbeat](p)
			if err != nil {
				t.Fatal(err)
			}
			if h.RSSI == -67 {
				return true
			}
		}
		return false
	})
}

// TestAnswerHeldUntilConnected: a config applied while the agent is not
// connected (a retained config can arrive before the connection counts as
// up) still gets its answer to the backend once it is: the answer is held,
// not dropped, so the fleet API does not show the device out of sync until
// its next heartbeat.
func TestAnswerHeldUntilConnected(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens yet: the agent keeps retrying

	a := startAgent(t, Config{Broker: "tcp://" + addr, DataDir: t.TempDir()})
	cfg := protocol.SampleConfig()
	payload, err := protocol.Encode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.applyConfig(payload)

	rec := &recorder{}
	startBroker(t, addr, rec)
	testwait.For(t, "the held answer sent once connected", func() bool { return len(rec.of(protocol.KindConfigApplied)) > 0 })
	ans, err := protocol.Decode[protocol.ConfigApplied](rec.of(protocol.KindConfigApplied)[0])
	if err != nil || !ans.OK || ans.Version != cfg.Version {
		t.Fatalf("answer %+v err %v, want OK for %s", ans, err, cfg.Version)
	}
}
