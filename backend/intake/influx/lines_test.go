package influx

import (
	"strings"
	"testing"

	lp "github.com/influxdata/line-protocol"

	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/protocol"
)

var place = registry.Placement{Org: "acme", Site: "sofia-1", Counter: "c-03", Operator: "op-default", Service: "general"}

func TestLinesGolden(t *testing.T) {
	ts := "1795512615250000000"
	noSvc := protocol.SampleVote()
	noSvc.Service, noSvc.Operator, noSvc.Activation, noSvc.Valid, noSvc.Reason = "", "", "", false, protocol.ReasonNoActivation
	nps := protocol.SampleVote()
	nps.Scale, nps.Score = protocol.ScaleNPS11, 3
	hb := protocol.SampleHeartbeat()
	hb.RSSI, hb.SupplyV, hb.Config = 0, 0, ""
	off := protocol.SampleStatus()
	off.Online, off.FW = false, ""
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"vote", VoteLine(nil, protocol.SampleVote(), place),
			`vote,channel=keypad,counter=c-03,device=kp-0001,operator=op-017,org=acme,scale=csat5,service=passport,site=sofia-1 score=4i,satisfied=1i,negative=0i,latency_ms=2400i,service_s=312i,seq=42i,valid="true",activation="act-7f3a" ` + ts},
		{"vote uses placement defaults", VoteLine(nil, noSvc, place),
			`vote,channel=keypad,counter=c-03,device=kp-0001,operator=op-default,org=acme,scale=csat5,service=general,site=sofia-1 score=4i,satisfied=1i,negative=0i,latency_ms=2400i,service_s=312i,seq=42i,valid="false" ` + ts},
		{"nps detractor", VoteLine(nil, nps, registry.Placement{}),
			`vote,channel=keypad,device=kp-0001,operator=op-017,scale=nps11,service=passport score=3i,satisfied=0i,negative=1i,latency_ms=2400i,service_s=312i,seq=42i,valid="true",activation="act-7f3a" ` + ts},
		{"activation", ActivationLine(nil, protocol.SampleActivationRecord(), place),
			`activation,channel=keypad,counter=c-03,device=kp-0001,operator=op-017,org=acme,service=passport,site=sofia-1,valid=true service_s=312i,voted=1i,closed=1i,window_s=20i,seq=41i,ticket="A-113",activation="act-7f3a" 1795512612850000000`},
		{"heartbeat", HeartbeatLine(nil, protocol.SampleHeartbeat(), place),
			`heartbeat,counter=c-03,device=kp-0001,fw=1.4.2,org=acme,site=sofia-1 uptime_s=86400i,rssi=-61i,temp_c=31.5,supply_v=5.02,outbox=0i,clock_offset_ms=-120i,presses_1=3i,presses_2=2i,presses_3=9i,presses_4=40i,presses_5=77i,errors=0i,panel_ok=1i,backlight_ok=1i,config="org-3" ` + ts},
		{"heartbeat wired, no config", HeartbeatLine(nil, hb, place),
			`heartbeat,counter=c-03,device=kp-0001,fw=1.4.2,org=acme,site=sofia-1 uptime_s=86400i,temp_c=31.5,outbox=0i,clock_offset_ms=-120i,presses_1=3i,presses_2=2i,presses_3=9i,presses_4=40i,presses_5=77i,errors=0i,panel_ok=1i,backlight_ok=1i ` + ts},
		{"presence online", PresenceLine(nil, protocol.SampleStatus(), place),
			`presence,counter=c-03,device=kp-0001,org=acme,site=sofia-1 online=1i,bdseq=7i,boot_id="b-5c1e",fw="1.4.2" ` + ts},
		{"presence offline", PresenceLine(nil, off, registry.Placement{Org: "acme"}),
			`presence,device=kp-0001,org=acme online=0i,bdseq=7i,boot_id="b-5c1e" ` + ts},
		{"appends to dst", VoteLine([]byte("x\n"), protocol.SampleVote(), registry.Placement{})[:6], "x\nvote"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if string(tc.got) != tc.want {
				t.Errorf("got\n%s\nwant\n%s", tc.got, tc.want)
			}
		})
	}
}

// hostile are placement values that break naive encoders.
var hostile = []struct{ in, stored string }{
	{"plain", "plain"},
	{"with space", "with space"},
	{"a,b=c d", "a,b=c d"},
	{`back\slash`, `back\slash`},
	{`trailing\`, `trailing`}, // no escape exists for it
	{`\`, ``},                 // nothing left: tag omitted
	{`esc\,aped`, `esc\,aped`},
	{`quote"d`, `quote"d`},
	{"new\nline", "new line"},
	{"tab\there", "tab here"},
	{"Оценка ★", "Оценка ★"},
	{"=", "="},
	{" lead", " lead"},
}

// TestHostileTagsParse checks every encoded line parses as one point with
// the expected tag values, using the line-protocol parser of InfluxData.
// (Backslashes are checked against a real InfluxDB in the writer tests:
// this parser unescapes them differently from InfluxDB 1.8.)
func TestHostileTagsParse(t *testing.T) {
	for _, h := range hostile {
		t.Run(h.in, func(t *testing.T) {
			p := registry.Placement{Org: h.in, Site: "s", Counter: h.in}
			line := VoteLine(nil, protocol.SampleVote(), p)
			m := parseOne(t, line)
			tags := tagMap(m)
			got, ok := tags["org"]
			if h.stored == "" {
				if ok {
					t.Fatalf("empty tag written: %q", line)
				}
				return
			}
			if !strings.Contains(h.stored, `\`) && got != h.stored {
				t.Fatalf("org tag %q, want %q; line %s", got, h.stored, line)
			}
			if tags["site"] != "s" || tags["device"] != "kp-0001" {
				t.Fatalf("neighbouring tags damaged: %v", tags)
			}
		})
	}
}

func parseOne(t testing.TB, line []byte) lp.Metric {
	t.Helper()
	ms, err := lp.NewParser(lp.NewMetricHandler()).Parse(line)
	if err != nil || len(ms) != 1 {
		t.Fatalf("parse %q: %d points, %v", line, len(ms), err)
	}
	return ms[0]
}

// FuzzLines encodes arbitrary placement and string field values and checks
// the result is always one well-formed point with all its fields.
func FuzzLines(f *testing.F) {
	for _, h := range hostile {
		f.Add(h.in, h.in, "act-1")
	}
	f.Add("", "", "")
	f.Add(`a\`, `"`, `x\"y`)
	f.Fuzz(func(t *testing.T, org, counter, activation string) {
		v := protocol.SampleVote()
		v.Activation = activation
		line := VoteLine(nil, v, registry.Placement{Org: org, Counter: counter, Site: "s"})
		if strings.Count(string(line), "\n") != 0 {
			t.Fatalf("newline in line %q", line)
		}
		m := parseOne(t, line)
		if m.Name() != "vote" || !m.Time().Equal(v.Time) {
			t.Fatalf("name %q time %v from %q", m.Name(), m.Time(), line)
		}
		if n := len(m.FieldList()); n != 7 && n != 8 { // valid is a field
			t.Fatalf("%d fields from %q", n, line)
		}
		if s, ok := fieldOf(m, "activation"); activation != "" && (!ok || s != sanitised(activation)) {
			t.Fatalf("activation %q, want %q, line %q", s, activation, line)
		}
		if tagMap(m)["site"] != "s" {
			t.Fatalf("site tag lost: %q", line)
		}
	})
}

func TestVoteLineDoesNotAllocate(t *testing.T) {
	v, buf := protocol.SampleVote(), make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(100, func() { buf = VoteLine(buf[:0], v, place) })
	if allocs != 0 {
		t.Errorf("VoteLine allocates %v times per call", allocs)
	}
}

func tagMap(m lp.Metric) map[string]string {
	out := map[string]string{}
	for _, tag := range m.TagList() {
		out[tag.Key] = tag.Value
	}
	return out
}

func fieldOf(m lp.Metric, key string) (any, bool) {
	for _, f := range m.FieldList() {
		if f.Key == key {
			return f.Value, true
		}
	}
	return nil, false
}

// sanitised is what str makes of control characters.
func sanitised(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < ' ' || c == 0x7f {
			b[i] = ' '
		}
	}
	return string(b)
}
