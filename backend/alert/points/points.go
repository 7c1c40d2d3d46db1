// Package points records alert state changes as `alert` points in the
// durable spool, for Grafana annotations. With the alert manager disabled,
// Recorder is itself the Raiser the health checks report to: each finding
// and resolution becomes a point at once, and a log line.
package points

import (
	"context"
	"log/slog"

	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/intake/influx"
)

// Appender takes one line-protocol record durably; *spool.Spool is one.
type Appender interface {
	Append(ctx context.Context, recs ...[]byte) error
}

// Recorder writes `alert` points through an Appender.
type Recorder struct {
	spool Appender
	clock clockwork.Clock
	log   *slog.Logger
}

// New returns a Recorder; clock and log may be nil (the real clock, no
// log).
func New(spool Appender, clock clockwork.Clock, log *slog.Logger) *Recorder {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{spool: spool, clock: clock, log: log}
}

// Record writes one state change of al (the alert manager's Options.Record).
func (r *Recorder) Record(ctx context.Context, al alert.Alert, ev alert.Event) error {
	msg := al.Message
	switch ev.Action {
	case alert.ActionAcknowledged, alert.ActionResolved, alert.ActionEscalated, alert.ActionExpired:
		msg = string(ev.Action)
		if ev.Actor != "" {
			msg += " by " + ev.Actor
		}
		if ev.Comment != "" {
			msg += ": " + ev.Comment
		}
	}
	return r.spool.Append(ctx, influx.AlertLine(nil, influx.Alert{
		Kind: string(al.Kind), Severity: string(al.Severity), State: string(al.State),
		Org: al.Subject.Org, Site: al.Subject.Site, Device: al.Subject.Device, Message: msg, Time: ev.Time,
	}))
}

// Raise records a firing finding (alert.Raiser, with alerts disabled).
func (r *Recorder) Raise(ctx context.Context, f alert.Finding) error {
	r.log.Warn("alert", "kind", f.Kind, "severity", f.Severity, "org", f.Subject.Org, "site", f.Subject.Site,
		"counter", f.Subject.Counter, "device", f.Subject.Device, "message", f.Message, "hint", f.Hint)
	return r.spool.Append(ctx, influx.AlertLine(nil, influx.Alert{
		Kind: string(f.Kind), Severity: string(f.Severity), State: string(alert.StateFiring),
		Org: f.Subject.Org, Site: f.Subject.Site, Device: f.Subject.Device, Message: f.Message, Time: f.Time,
	}))
}

// Resolve records a resolution, at the recorder's clock's now (alert.Raiser,
// with alerts disabled).
func (r *Recorder) Resolve(ctx context.Context, kind alert.Kind, s alert.Subject, reason string) error {
	r.log.Info("alert resolved", "kind", kind, "org", s.Org, "site", s.Site, "device", s.Device, "reason", reason)
	return r.spool.Append(ctx, influx.AlertLine(nil, influx.Alert{
		Kind: string(kind), State: string(alert.StateResolved),
		Org: s.Org, Site: s.Site, Device: s.Device, Message: reason, Time: r.clock.Now(),
	}))
}

var _ alert.Raiser = (*Recorder)(nil)
