package engine

import (
	"strconv"
	"strings"
	"time"

	"github.com/semko/semko/backend/survey"
)

// Measurements the survey writes beside the vote point (see the README's
// "Time series"). Their tags come from the fleet registry and the fixed
// reason categories, never from what a customer typed, so the series stay
// bounded by the fleet.
const (
	MeasurementInvitation = "nps_invitation"
	MeasurementReason     = "nps_reason"
	MeasurementComment    = "nps_comment"
	MeasurementFollowUp   = "nps_followup"
)

// line builds one line of InfluxDB line protocol; tags must be added in
// key order.
type line struct {
	b      strings.Builder
	fields int
}

var (
	keyEscaper = strings.NewReplacer(",", `\,`, "=", `\=`, " ", `\ `, "\n", " ", "\r", " ")
	strEscaper = strings.NewReplacer(`"`, `\"`, `\`, `\\`, "\n", `\n`, "\r", "")
)

func newLine(m string) *line {
	l := &line{}
	l.b.WriteString(m)
	return l
}

func (l *line) tag(k, v string) *line {
	if v == "" {
		return l
	}
	l.b.WriteByte(',')
	l.b.WriteString(k)
	l.b.WriteByte('=')
	l.b.WriteString(keyEscaper.Replace(v))
	return l
}

func (l *line) sep() {
	if l.fields == 0 {
		l.b.WriteByte(' ')
	} else {
		l.b.WriteByte(',')
	}
	l.fields++
}

func (l *line) int(k string, v int64) *line {
	l.sep()
	l.b.WriteString(k)
	l.b.WriteByte('=')
	l.b.WriteString(strconv.FormatInt(v, 10))
	l.b.WriteByte('i')
	return l
}

func (l *line) str(k, v string) *line {
	l.sep()
	l.b.WriteString(k)
	l.b.WriteString(`="`)
	l.b.WriteString(strEscaper.Replace(v))
	l.b.WriteByte('"')
	return l
}

func (l *line) end(t time.Time) []byte {
	l.b.WriteByte(' ')
	l.b.WriteString(strconv.FormatInt(t.UnixNano(), 10))
	return []byte(l.b.String())
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// invitationLine is one sent invitation: the denominator of the response
// rate.
func invitationLine(inv survey.Invitation) []byte {
	return newLine(MeasurementInvitation).
		tag("channel", string(inv.Channel)).tag("counter", inv.Counter).tag("org", inv.Org).
		tag("service", inv.Service).tag("site", inv.Site).
		int("sent", 1).end(inv.Created)
}

// detailLines are an answer's reason points, one per driver named (tag
// driver), so NPS breaks down by driver with GROUP BY, and its comment
// point when it has one. They carry the answer's time: a resend
// overwrites itself.
func detailLines(a survey.Answer) [][]byte {
	var out [][]byte
	cat := survey.CategoryOf(a.Score)
	for _, d := range a.Reasons {
		out = append(out, newLine(MeasurementReason).
			tag("channel", string(a.Channel)).tag("counter", a.Counter).tag("driver", d).tag("org", a.Org).
			tag("service", a.Service).tag("site", a.Site).
			int("score", int64(a.Score)).int("promoter", b2i(cat == survey.Promoter)).int("detractor", b2i(cat == survey.Detractor)).
			end(a.Time))
	}
	if a.Comment != "" {
		out = append(out, newLine(MeasurementComment).
			tag("channel", string(a.Channel)).tag("counter", a.Counter).tag("org", a.Org).
			tag("service", a.Service).tag("site", a.Site).
			int("score", int64(a.Score)).str("reasons", strings.Join(a.Reasons, ",")).str("comment", a.Comment).
			end(a.Time))
	}
	return out
}

// followUpLine is a follow-up's state at its opening time: written when
// it opens, is escalated and closes, each time overwriting the fields of
// the same point, so sum("open") over the opening times counts the open
// ones.
func followUpLine(f survey.FollowUp) []byte {
	l := newLine(MeasurementFollowUp).tag("counter", f.Counter).tag("org", f.Org).tag("site", f.Site).
		int("id", f.ID).int("score", int64(f.Score)).
		int("open", b2i(f.State == survey.FollowUpOpen)).int("overdue", b2i(!f.Escalated.IsZero()))
	if f.State == survey.FollowUpClosed {
		l.int("in_time", b2i(f.InTime())).int("closed", 1)
	}
	// The id in the nanoseconds keeps two follow-ups opened in the same
	// millisecond at one counter apart.
	return l.end(f.Opened.Truncate(time.Millisecond).Add(time.Duration(f.ID % 1_000_000)))
}
