package backend

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/points"
	"github.com/semko/semko/backend/api"
	"github.com/semko/semko/backend/health/diagnostics"
	"github.com/semko/semko/backend/health/lifecycle"
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
	raiser := a.raiser()
	var err error
	if !a.cfg.Diagnostics.Disabled {
		a.health.diag, err = diagnostics.New(diagnostics.Options{
			Config: a.cfg.Diagnostics, Devices: a.ingest.Devices, Registry: a.registry.Current,
			Raiser: raiser, Publisher: a.source, Cluster: a.clusterJobs(), Logger: a.log.With("part", "diagnostics"),
		})
		if err != nil {
			return fmt.Errorf("diagnostics: %w", err)
		}
	}
	if !a.cfg.Lifecycle.Disabled {
		a.health.life, err = lifecycle.New(lifecycle.Options{
			Config: a.cfg.Lifecycle, Registry: a.registry.Current, Raiser: raiser,
			Cluster: a.clusterJobs(), Logger: a.log.With("part", "lifecycle"),
		})
		if err != nil {
			return fmt.Errorf("lifecycle: %w", err)
		}
	}
	return nil
}

// raiser is where findings go: the alert manager, or with alerts
// disabled `alert` points and a log line.
func (a *App) raiser() alert.Raiser {
	if a.alerts.manager != nil {
		return a.alerts.manager
	}
	return points.New(a.spool, nil, a.log.With("part", "alert-points"))
}

// addHealth adds both jobs to the supervisor, last: a running check
// publishes (self-tests) and raises, so they stop before MQTT and the
// alert manager.
func (a *App) addHealth() {
	if a.health.diag != nil {
		a.sup.add("diagnostics", optional(a.log, "diagnostics", a.health.diag))
	}
	if a.health.life != nil {
		a.sup.add("lifecycle", optional(a.log, "lifecycle reminders", a.health.life))
	}
}

// optional runs a scheduled job the backend can do without: one that
// cannot start (a bad schedule) is logged, and the backend runs on.
func optional(log *slog.Logger, what string, p Part) Part {
	return optionalPart{p, log, what}
}

type optionalPart struct {
	Part
	log  *slog.Logger
	what string
}

func (o optionalPart) Run(ctx context.Context) error {
	if err := o.Part.Run(ctx); err != nil && ctx.Err() == nil {
		o.log.Error(o.what+" not started", "err", err)
		<-ctx.Done()
	} else if err != nil {
		o.log.Warn(o.what+" stop", "err", err)
	}
	return nil
}

// Close releases what a part that never ran holds.
func (o optionalPart) Close() error {
	if c, ok := o.Part.(closer); ok {
		return c.Close()
	}
	return nil
}

// healthRoutes serves the diagnostics' status and on-demand runs.
func (a *App) healthRoutes() []api.Route {
	if a.health.diag == nil {
		return nil
	}
	var out []api.Route
	for _, rt := range a.health.diag.Routes() {
		out = append(out, api.Route{Pattern: rt.Pattern, Handler: rt.Handler, Rule: rt.Rule})
	}
	return out
}

// Diagnostics runs the device checks (nil when disabled); tests and the
// API may run a check at once with its CheckNow method.
func (a *App) Diagnostics() *diagnostics.Diagnostics { return a.health.diag }
