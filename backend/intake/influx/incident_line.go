package influx

import "time"

// MeasurementIncident is the measurement of the incident desk's steps.
const MeasurementIncident = "incident"

// Incident is one step of an incident (registered, passed on, closed ...)
// as the Customer Service dashboard reads it. One point per step: counting
// the points of a state counts the incidents that reached it.
type Incident struct {
	ID                                         int64
	Org, Site, Department, Channel, Type       string
	State                                      string // the state reached, or "overdue", "rejected"
	Reason                                     string // why service took long, on a late close
	Open, Closed, Thanks, WithinDeadline, Late bool
	// PassMin and CloseMin are minutes from registration to pass-on and to
	// close; negative leaves the field out (not known at this step).
	PassMin, CloseMin float64
	// Errors counts interaction errors found at this step, by code.
	Errors map[string]int
	// WithinSet says WithinDeadline is meaningful at this step.
	WithinSet bool
	Time      time.Time
}

// IncidentLine appends the step as one line of measurement incident.
// Tags: channel, department, org, reason, site, state, type (empty ones
// omitted). Fields: id, open, closed, thanks, late, errors, err_<code>,
// and where known pass_min, close_min, within_deadline.
func IncidentLine(dst []byte, in Incident) []byte {
	l := line{b: dst}
	l.b = append(l.b, MeasurementIncident...)
	l.tag("channel", in.Channel)
	l.tag("department", in.Department)
	l.tag("org", in.Org)
	l.tag("reason", in.Reason)
	l.tag("site", in.Site)
	l.tag("state", in.State)
	l.tag("type", in.Type)
	l.int("id", in.ID)
	l.bool("open", in.Open)
	l.bool("closed", in.Closed)
	l.bool("thanks", in.Thanks)
	l.bool("late", in.Late)
	total := 0
	for _, code := range ErrorCodes {
		n := in.Errors[code]
		total += n
		l.int("err_"+code, int64(n))
	}
	l.int("errors", int64(total))
	if in.PassMin >= 0 {
		l.float("pass_min", in.PassMin)
	}
	if in.CloseMin >= 0 {
		l.float("close_min", in.CloseMin)
	}
	if in.WithinSet {
		l.bool("within_deadline", in.WithinDeadline)
	}
	return l.end(in.Time.UnixNano())
}

// ErrorCodes are the interaction errors the incident desk checks, in the
// order the fields are written; each is a field err_<code>.
var ErrorCodes = []string{"documents", "comment", "remark", "name", "resolution"}
