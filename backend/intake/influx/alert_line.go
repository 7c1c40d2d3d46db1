package influx

import "time"

// MeasurementAlert is the measurement of alert state changes.
const MeasurementAlert = "alert"

// Alert is one alert state change, as the alert measurement records it.
// Values are plain strings so this package stays free of the alert model;
// callers pass alert.Kind, alert.Severity and alert.State converted.
type Alert struct {
	Kind     string // e.g. "offline", "stuck_key"
	Severity string // info, warning, critical
	State    string // firing, acknowledged, resolved
	Org      string
	Site     string
	Device   string
	Message  string
	Time     time.Time
}

// AlertLine appends the state change as one line of measurement alert.
// Tags: device, kind, org, severity, site (empty ones omitted). Fields:
// state and message (strings; state is always written, so the line always
// has a field). Grafana shows these points as annotations.
func AlertLine(dst []byte, a Alert) []byte {
	l := line{b: dst}
	l.b = append(l.b, MeasurementAlert...)
	l.tag("device", a.Device)
	l.tag("kind", a.Kind)
	l.tag("org", a.Org)
	l.tag("severity", a.Severity)
	l.tag("site", a.Site)
	state := a.State
	if state == "" {
		state = "firing"
	}
	l.str("state", state)
	l.str("message", a.Message)
	return l.end(a.Time.UnixNano())
}
