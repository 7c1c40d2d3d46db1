// Package influx turns Semko's messages into InfluxDB line protocol and
// writes them, from the backend's durable spool, to InfluxDB 1.8, 2.x or 3.x
// through the /api/v2/write endpoint.
//
// The measurements, tags and fields are a public contract (dashboards and
// users' queries depend on them; see DESIGN.md "Time series"). The encoders
// append to a caller's buffer and allocate nothing on their own, because
// every vote passes through them.
package influx

import (
	"cmp"
	"math"
	"strconv"
	"strings"

	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/protocol"
)

// Measurement names.
const (
	MeasurementVote       = "vote"
	MeasurementActivation = "activation"
	MeasurementHeartbeat  = "heartbeat"
	MeasurementPresence   = "presence"
)

// VoteLine appends the vote as one line (no trailing newline) of measurement
// vote to dst. Tags: channel, counter, device, operator, org, scale, service,
// site. Fields: score, satisfied, negative, latency_ms, service_s, seq
// (integers), valid ("true" or "false") and activation (strings, activation
// omitted when empty). The timestamp is the press, so a redelivered vote
// overwrites itself.
//
// valid was a tag until issue 16: as a tag it gave every operator and
// service at a device a second series for its invalid presses. As a string
// field, queries written for the tag (WHERE "valid" = 'true') still select
// the same points: InfluxQL takes an unqualified name for the field when
// the shard has one. Only a shard holding both shapes needs
// ("valid"::tag = 'true' OR "valid"::field = 'true'), which the dashboards
// and rollups use.
func VoteLine(dst []byte, v protocol.Vote, p registry.Placement) []byte {
	return VoteLineWith(dst, v, p, Unconfirmed{})
}

// Unconfirmed holds tag values a device sent that the backend did not
// accept as tags (an operator or service the registry does not know, a
// channel or firmware outside the known set): the point carries the
// counter's default (or "other") as the tag, and the device's value as the
// string field <tag>_claimed, so nothing is lost and the series stay
// bounded by the registry.
type Unconfirmed struct {
	Operator, Service, Channel, FW string
}

// VoteLineWith is VoteLine with the fields of u: operator_claimed,
// service_claimed, channel_claimed (strings, omitted when empty).
func VoteLineWith(dst []byte, v protocol.Vote, p registry.Placement, u Unconfirmed) []byte {
	l := line{b: dst}
	l.b = append(l.b, MeasurementVote...)
	// Tags in key order: InfluxDB sorts them anyway, and sorted input
	// spares it the work.
	l.tag("channel", v.Channel)
	l.tag("counter", p.Counter)
	l.tag("device", v.Device)
	l.tag("operator", cmp.Or(v.Operator, p.Operator))
	l.tag("org", p.Org)
	// scale keeps 0..10 NPS answers apart from 1..5 keypad ratings, so
	// mean(score) never mixes the two.
	l.tag("scale", string(v.Scale))
	l.tag("service", cmp.Or(v.Service, p.Service))
	l.tag("site", p.Site)
	l.int("score", int64(v.Score))
	l.bool("satisfied", v.Satisfied())
	l.bool("negative", v.Negative())
	l.int("latency_ms", v.LatencyMS)
	l.int("service_s", int64(v.ServiceS))
	l.int("seq", int64(v.Seq))
	l.str("valid", strconv.FormatBool(v.Valid))
	l.str("activation", v.Activation)
	l.str("operator_claimed", u.Operator)
	l.str("service_claimed", u.Service)
	l.str("channel_claimed", u.Channel)
	return l.end(v.Time.UnixNano())
}

// ActivationLine appends the activation record as one line of measurement
// activation: the tags of a vote (channel keypad, valid true), fields
// service_s, window_s (integers), ticket and activation (strings, omitted
// when empty), and for the closing record also voted, closed and seq. Both
// reports of one activation carry its opening time and so make one point,
// whose fields InfluxDB merges. The opening report leaves out what the
// closing one settles: redelivered late, after the closing report, it must
// not turn a voted activation back into an unvoted one. So voted is there
// only once final, and count("voted") counts closed activations.
func ActivationLine(dst []byte, a protocol.ActivationRecord, p registry.Placement) []byte {
	return ActivationLineWith(dst, a, p, Unconfirmed{})
}

// ActivationLineWith is ActivationLine with the fields of u:
// operator_claimed, service_claimed (strings, omitted when empty).
func ActivationLineWith(dst []byte, a protocol.ActivationRecord, p registry.Placement, u Unconfirmed) []byte {
	l := line{b: dst}
	l.b = append(l.b, MeasurementActivation...)
	l.tag("channel", protocol.ChannelKeypad)
	l.tag("counter", p.Counter)
	l.tag("device", a.Device)
	l.tag("operator", cmp.Or(a.Operator, p.Operator))
	l.tag("org", p.Org)
	l.tag("service", cmp.Or(a.Service, p.Service))
	l.tag("site", p.Site)
	l.tag("valid", "true")
	l.int("service_s", int64(a.ServiceS))
	if a.Closed {
		l.bool("voted", a.Voted)
		l.bool("closed", true)
	}
	l.int("window_s", int64(a.WindowS))
	if a.Closed {
		l.int("seq", int64(a.Seq))
	}
	l.str("ticket", a.Ticket)
	l.str("activation", a.ID)
	l.str("operator_claimed", u.Operator)
	l.str("service_claimed", u.Service)
	return l.end(a.Time.UnixNano())
}

// HeartbeatLine appends the heartbeat as one line of measurement heartbeat.
// Tags: counter, device, fw, org, site. Fields: uptime_s, outbox,
// clock_offset_ms, presses_1..presses_5, errors, panel_ok, backlight_ok
// (integers), temp_c (float), rssi and supply_v (only when reported, that
// is non-zero), config (string, omitted when empty).
func HeartbeatLine(dst []byte, h protocol.Heartbeat, p registry.Placement) []byte {
	return HeartbeatLineWith(dst, h, p, Unconfirmed{})
}

// HeartbeatLineWith is HeartbeatLine with the field fw_claimed of u
// (string, omitted when empty).
func HeartbeatLineWith(dst []byte, h protocol.Heartbeat, p registry.Placement, u Unconfirmed) []byte {
	l := line{b: dst}
	l.b = append(l.b, MeasurementHeartbeat...)
	l.tag("counter", p.Counter)
	l.tag("device", h.Device)
	l.tag("fw", h.FW)
	l.tag("org", p.Org)
	l.tag("site", p.Site)
	l.int("uptime_s", h.UptimeS)
	if h.RSSI != 0 {
		l.int("rssi", int64(h.RSSI))
	}
	l.float("temp_c", h.TempC)
	if h.SupplyV != 0 {
		l.float("supply_v", h.SupplyV)
	}
	l.int("outbox", int64(h.Outbox))
	l.int("clock_offset_ms", h.ClockOffsetMS)
	for i, key := range [5]string{"presses_1", "presses_2", "presses_3", "presses_4", "presses_5"} {
		l.int(key, int64(h.Presses[i]))
	}
	l.int("errors", int64(h.Errors))
	l.bool("panel_ok", h.PanelOK)
	l.bool("backlight_ok", h.BacklightOK)
	l.str("config", h.Config)
	l.str("fw_claimed", u.FW)
	return l.end(h.Time.UnixNano())
}

// PresenceLine appends a connect or disconnect as one line of measurement
// presence. Tags: counter, device, org, site. Fields: online (1/0), bdseq
// (integers), boot_id and fw (strings, omitted when empty).
func PresenceLine(dst []byte, s protocol.Status, p registry.Placement) []byte {
	l := line{b: dst}
	l.b = append(l.b, MeasurementPresence...)
	l.tag("counter", p.Counter)
	l.tag("device", s.Device)
	l.tag("org", p.Org)
	l.tag("site", p.Site)
	l.bool("online", s.Online)
	l.int("bdseq", int64(s.BDSeq))
	l.str("boot_id", s.BootID)
	l.str("fw", s.FW)
	return l.end(s.Time.UnixNano())
}

// line builds one line protocol line. Keys are our own constants and need
// no escaping; values do.
type line struct {
	b      []byte
	fields int
}

// tag appends ",key=value", or nothing for an empty value (line protocol
// has no empty tag values).
//
// Escaping follows InfluxDB's parser: comma, equals and space get a
// backslash. Two cases have no escape at all, so the value is changed
// rather than let it break the line: control characters (a newline ends
// the line) become spaces, and trailing backslashes (they would escape the
// separator after the value) are dropped.
func (l *line) tag(key, value string) {
	value = strings.TrimRight(value, `\`)
	if value == "" {
		return
	}
	l.b = append(l.b, ',')
	l.b = append(l.b, key...)
	l.b = append(l.b, '=')
	if !needsTagEscape(value) {
		l.b = append(l.b, value...)
		return
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch {
		case c == ',' || c == '=' || c == ' ':
			l.b = append(l.b, '\\', c)
		case c < ' ' || c == 0x7f:
			l.b = append(l.b, '\\', ' ')
		default:
			l.b = append(l.b, c)
		}
	}
}

func needsTagEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == ',' || c == '=' || c == 0x7f {
			return true
		}
	}
	return false
}

func (l *line) key(key string) {
	if l.fields == 0 {
		l.b = append(l.b, ' ')
	} else {
		l.b = append(l.b, ',')
	}
	l.fields++
	l.b = append(l.b, key...)
	l.b = append(l.b, '=')
}

func (l *line) int(key string, v int64) {
	l.key(key)
	l.b = strconv.AppendInt(l.b, v, 10)
	l.b = append(l.b, 'i')
}

// bool writes 1 or 0 as an integer: dashboards take mean() of it as a share.
func (l *line) bool(key string, v bool) {
	n := int64(0)
	if v {
		n = 1
	}
	l.int(key, n)
}

// float skips NaN and infinities, which line protocol cannot carry.
func (l *line) float(key string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	l.key(key)
	l.b = strconv.AppendFloat(l.b, v, 'f', -1, 64)
}

// str appends a string field, omitted when empty. Inside the quotes the
// quote and the backslash are escaped; control characters become spaces,
// since not every InfluxDB version takes a newline inside a string.
func (l *line) str(key, v string) {
	if v == "" {
		return
	}
	l.key(key)
	l.b = append(l.b, '"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"' || c == '\\':
			l.b = append(l.b, '\\', c)
		case c < ' ' || c == 0x7f:
			l.b = append(l.b, ' ')
		default:
			l.b = append(l.b, c)
		}
	}
	l.b = append(l.b, '"')
}

func (l *line) end(ns int64) []byte {
	l.b = append(l.b, ' ')
	l.b = strconv.AppendInt(l.b, ns, 10)
	return l.b
}
