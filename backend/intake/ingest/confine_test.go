package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/protocol"
)

// A reinstalled edge agent starts its outbox at seq 1 again: its new votes
// have the old sequence numbers and new timestamps, and must all be stored.
// A vote resent as it was (same seq, same ts) is still a duplicate.
func TestRestartedSequenceIsNotADuplicate(t *testing.T) {
	f := newFixture(t, nil)
	topic := protocol.Topic{Device: "kp-0001", Kind: protocol.KindVote}
	vote := func(seq uint64, ts time.Time) []byte {
		v := protocol.SampleVote()
		v.Seq, v.Time = seq, ts
		return mustJSON(t, v)
	}
	first := now.Add(-time.Hour)
	for seq := uint64(1); seq <= 5; seq++ {
		if err := f.in.Accept(context.Background(), topic, vote(seq, first.Add(time.Duration(seq)*time.Second)), now); err != nil {
			t.Fatal(err)
		}
	}
	// The reinstalled edge: seq from 1, later presses.
	for seq := uint64(1); seq <= 5; seq++ {
		if err := f.in.Accept(context.Background(), topic, vote(seq, now.Add(-time.Duration(10-seq)*time.Second)), now); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.spool.lines()); n != 10 {
		t.Fatalf("spooled %d votes, want 10: the reinstalled edge's votes were taken for duplicates", n)
	}
	// A real resend of the last one.
	if err := f.in.Accept(context.Background(), topic, vote(5, now.Add(-5*time.Second)), now); err != nil {
		t.Fatal(err)
	}
	if n, d := len(f.spool.lines()), testutil.ToFloat64(f.in.m.duplicates); n != 10 || d != 1 {
		t.Errorf("after a resend: %d spooled, %v duplicates; want 10 and 1", n, d)
	}
}

// confineFleet places kp-0001 at a counter of org-1 whose defaults are
// op-a1 and passport; op-b1 works for another organisation.
const confineFleet = `
organisations:
  - id: org-1
    timezone: Europe/Sofia
    sites:
      - id: site-1
        counters:
          - {id: c-1, device: kp-0001, operator: op-a1, service: passport}
  - id: org-2
    timezone: Europe/Berlin
devices:
  - {id: kp-0001, secret_hash: "sha256$00$0000000000000000000000000000000000000000000000000000000000000000"}
operators:
  - {id: op-a1, name: "Ana", org: org-1}
  - {id: op-a2, name: "Boris", org: org-1}
  - {id: op-b1, name: "Clara", org: org-2}
services:
  - {id: passport}
  - {id: taxes}
`

// Devices cannot choose tag values: an operator outside the device's
// organisation, a service the registry lacks, a channel outside the known
// set and a firmware that is no version are stored as <tag>_claimed fields,
// the tag takes the default, and a metric counts each.
func TestDeviceChosenTagsConfined(t *testing.T) {
	reg, err := registry.Parse(strings.NewReader(confineFleet))
	if err != nil {
		t.Fatal(err)
	}
	spool, prom := &memSpool{}, prometheus.NewRegistry()
	in, err := New(Options{
		Registry: func() *registry.Registry { return reg }, Spool: spool,
		Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler), Registerer: prom,
	})
	if err != nil {
		t.Fatal(err)
	}
	var seen []protocol.Vote
	in.opts.OnVote = func(v protocol.Vote, _ registry.Placement) { seen = append(seen, v) }
	accept := func(kind protocol.Kind, v any) string {
		t.Helper()
		before := len(spool.lines())
		if err := in.Accept(context.Background(), protocol.Topic{Device: "kp-0001", Kind: kind}, mustJSON(t, v), now); err != nil {
			t.Fatal(err)
		}
		lines := spool.lines()
		if len(lines) != before+1 {
			t.Fatalf("%s not spooled", kind)
		}
		return lines[before]
	}
	seq := uint64(0)
	vote := func(op, svc, channel string) protocol.Vote {
		seq++
		v := protocol.SampleVote()
		v.Seq, v.Time, v.Operator, v.Service, v.Channel = seq, now.Add(-time.Duration(seq)*time.Second), op, svc, channel
		return v
	}

	for _, tt := range []struct {
		name              string
		op, svc, channel  string
		wantTags, notTags []string
		wantFields        []string
	}{
		{"registered", "op-a2", "taxes", "web", []string{",operator=op-a2,", ",service=taxes,", "vote,channel=web,"}, nil, nil},
		{"none named", "", "", "keypad", []string{",operator=op-a1,", ",service=passport,"}, nil, nil},
		{"invented", "op-ghost", "svc-ghost", "radio",
			[]string{",operator=op-a1,", ",service=passport,", "vote,channel=other,"}, []string{"ghost"},
			[]string{`operator_claimed="op-ghost"`, `service_claimed="svc-ghost"`, `channel_claimed="radio"`}},
		{"another organisation's operator", "op-b1", "passport", "keypad",
			[]string{",operator=op-a1,"}, []string{"operator=op-b1"}, []string{`operator_claimed="op-b1"`}},
	} {
		line := accept(protocol.KindVote, vote(tt.op, tt.svc, tt.channel))
		tags, _, _ := strings.Cut(line, " ")
		for _, w := range tt.wantTags {
			if !strings.Contains(tags+",", w) {
				t.Errorf("%s: tags %q lack %q", tt.name, tags, w)
			}
		}
		for _, w := range tt.notTags {
			if strings.Contains(tags, w) {
				t.Errorf("%s: tags %q hold %q", tt.name, tags, w)
			}
		}
		for _, w := range tt.wantFields {
			if !strings.Contains(line, w) {
				t.Errorf("%s: line %q lacks field %s", tt.name, line, w)
			}
		}
	}
	// The rating watcher gets the confirmed values too.
	if last := seen[len(seen)-1]; last.Operator != "" {
		t.Errorf("OnVote saw operator %q, want the counter's default (empty)", last.Operator)
	}

	// 1,000 invented operators and services make no new series.
	series := map[string]bool{}
	for i := range 1000 {
		line := accept(protocol.KindVote, vote(fmt.Sprintf("op-%d", i), fmt.Sprintf("svc-%d", i), "keypad"))
		tags, _, _ := strings.Cut(line, " ")
		series[tags] = true
	}
	if len(series) != 1 {
		t.Errorf("1,000 invented operators made %d series, want 1", len(series))
	}

	a := protocol.SampleActivationRecord()
	a.Operator, a.Service = "op-b1", "svc-ghost"
	if line := accept(protocol.KindActivation, a); !strings.Contains(line, ",operator=op-a1,") ||
		!strings.Contains(line, ",service=passport,") || !strings.Contains(line, `operator_claimed="op-b1"`) {
		t.Errorf("activation line %q", line)
	}

	for _, tt := range []struct{ fw, tag string }{
		{"1.4.2", "1.4.2"}, {"v2.0.0-rc.1", "v2.0.0-rc.1"}, {"1.4.2+build.77", "1.4.2+build.77"},
		{"evil-series-0042", "unknown"}, {"1.2.3.4.5", "unknown"}, {"99999999", "unknown"},
	} {
		h := protocol.SampleHeartbeat()
		h.FW = tt.fw
		h.Time = h.Time.Add(time.Duration(len(tt.fw)) * time.Millisecond)
		line := accept(protocol.KindHeartbeat, h)
		if !strings.Contains(line, ",fw="+tt.tag+",") {
			t.Errorf("fw %q: line %q, want tag %q", tt.fw, line, tt.tag)
		}
		if claimed := strings.Contains(line, `fw_claimed="`+tt.fw+`"`); claimed != (tt.tag == "unknown") {
			t.Errorf("fw %q: fw_claimed field present=%v", tt.fw, claimed)
		}
	}

	counts := map[string]float64{}
	for _, kt := range [][2]string{{"vote", "operator"}, {"vote", "service"}, {"vote", "channel"},
		{"activation", "operator"}, {"activation", "service"}, {"heartbeat", "fw"}} {
		counts[kt[0]+"/"+kt[1]] = testutil.ToFloat64(in.m.unconfirmed.WithLabelValues(kt[0], kt[1]))
	}
	want := map[string]float64{"vote/operator": 1002, "vote/service": 1001, "vote/channel": 1,
		"activation/operator": 1, "activation/service": 1, "heartbeat/fw": 3}
	for k, w := range want {
		if counts[k] != w {
			t.Errorf("semko_ingest_unconfirmed_tags_total{%s} = %v, want %v", k, counts[k], w)
		}
	}
}
