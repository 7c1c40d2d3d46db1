package backend

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/api"
	"github.com/semko/semko/backend/health/diagnostics"
	"github.com/semko/semko/backend/health/lifecycle"
	"github.com/semko/semko/backend/intake/influx"
	"github.com/semko/semko/backend/intake/spool"
)

// healthParts are the fleet-health jobs: device diagnostics and lifecycle
// reminders (nil when disabled).
type healthParts struct {
	diag *diagnostics.Diagnostics
	life *lifecycle.Job
}

// newHealth builds the diagnostics and the lifecycle job. Their findings
// go to the alert manager; with alerts disabled they are still recorded as
// `alert` points and logged.
func (a *App) newHealth() error {
	var raiser alert.Raiser = alertPoints{spool: a.spool, log: a.log.With("part", "alert-points")}
	if a.alerts.manager != nil {
		raiser = a.alerts.manager
	}
	var err error
	if !a.cfg.Diagnostics.Disabled {
		a.health.diag, err = diagnostics.New(diagnostics.Options{
			Config: a.cfg.Diagnostics, Devices: a.ingest.Devices, Registry: a.registry.Current,
			Raiser: raiser, Publisher: a.publisher(), Logger: a.log.With("part", "diagnostics"),
		})
		if err != nil {
			return fmt.Errorf("diagnostics: %w", err)
		}
	}
	if !a.cfg.Lifecycle.Disabled {
		a.health.life, err = lifecycle.New(lifecycle.Options{
			Config: a.cfg.Lifecycle, Registry: a.registry.Current, Raiser: raiser,
			Logger: a.log.With("part", "lifecycle"),
		})
		if err != nil {
			return fmt.Errorf("lifecycle: %w", err)
		}
	}
	return nil
}

// startHealth schedules both jobs; a job that cannot start is logged and
// the backend runs on without it.
func (a *App) startHealth() {
	if a.health.diag != nil {
		if err := a.health.diag.Start(); err != nil {
			a.log.Error("diagnostics not started", "err", err)
		}
	}
	if a.health.life != nil {
		if err := a.health.life.Start(); err != nil {
			a.log.Error("lifecycle reminders not started", "err", err)
		}
	}
}

// stopHealth stops both, waiting for running checks. Call it before the
// alert manager and the spool stop: a running check still raises.
func (a *App) stopHealth() {
	if a.health.diag != nil {
		if err := a.health.diag.Stop(); err != nil {
			a.log.Warn("diagnostics stop", "err", err)
		}
	}
	if a.health.life != nil {
		if err := a.health.life.Stop(); err != nil {
			a.log.Warn("lifecycle stop", "err", err)
		}
	}
}

// healthRoutes serves the diagnostics' status and on-demand runs.
func (a *App) healthRoutes() []api.Route {
	if a.health.diag == nil {
		return nil
	}
	var out []api.Route
	for _, rt := range a.health.diag.Routes() {
		out = append(out, api.Route{Pattern: rt.Pattern, Handler: rt.Handler})
	}
	return out
}

// Diagnostics runs the device checks (nil when disabled); tests and the
// API may run a check at once with its Run method.
func (a *App) Diagnostics() *diagnostics.Diagnostics { return a.health.diag }

// alertPoints is the Raiser used when the alert manager is disabled: every
// finding and resolution becomes an `alert` point at once, and a log line.
type alertPoints struct {
	spool *spool.Spool
	log   *slog.Logger
}

func (p alertPoints) Raise(ctx context.Context, f alert.Finding) error {
	p.log.Warn("alert", "kind", f.Kind, "severity", f.Severity, "org", f.Subject.Org, "site", f.Subject.Site,
		"counter", f.Subject.Counter, "device", f.Subject.Device, "message", f.Message, "hint", f.Hint)
	return p.spool.Append(ctx, influx.AlertLine(nil, influx.Alert{
		Kind: string(f.Kind), Severity: string(f.Severity), State: string(alert.StateFiring),
		Org: f.Subject.Org, Site: f.Subject.Site, Device: f.Subject.Device, Message: f.Message, Time: f.Time,
	}))
}

func (p alertPoints) Resolve(ctx context.Context, kind alert.Kind, s alert.Subject, reason string) error {
	p.log.Info("alert resolved", "kind", kind, "org", s.Org, "site", s.Site, "device", s.Device, "reason", reason)
	return p.spool.Append(ctx, influx.AlertLine(nil, influx.Alert{
		Kind: string(kind), State: string(alert.StateResolved),
		Org: s.Org, Site: s.Site, Device: s.Device, Message: reason, Time: time.Now(),
	}))
}
