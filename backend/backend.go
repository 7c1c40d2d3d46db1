// Package backend composes Semko's server side: it builds each part from
// the configuration, hands them to a supervisor in dependency order, and
// chooses the message source (the embedded broker or an external one).
// The parts live in the domain folders: intake/ (how a vote gets stored),
// fleet/ (who the devices are and what they run), health/ (are they
// well), alert/ (who hears about what), rollup/ and api/. See
// docs/architecture.md.
package backend

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/semko/semko/backend/api"
	"github.com/semko/semko/backend/fleet/configpush"
	"github.com/semko/semko/backend/fleet/fleetapi"
	"github.com/semko/semko/backend/fleet/live"
	"github.com/semko/semko/backend/fleet/timebeacon"
	"github.com/semko/semko/backend/intake/influx"
	"github.com/semko/semko/backend/intake/ingest"
	"github.com/semko/semko/backend/intake/spool"
	"github.com/semko/semko/backend/web"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/protocol"
)

// App is one backend process.
type App struct {
	cfg      Config
	log      *slog.Logger
	metrics  *prometheus.Registry
	sup      supervisor
	registry *registry.Store
	creds    *broker.Credentials
	spool    *spool.Spool
	writer   *influx.Writer
	ingest   *ingest.Ingest
	source   source              // embedded broker or external (source.go)
	fleet    fleetParts          // fleet database and config push (fleet.go)
	health   healthParts         // diagnostics and lifecycle reminders (health.go)
	alerts   alertParts          // alert manager and rating watcher (alerts.go)
	desk     incidentParts       // the incident desk (incidents.go)
	series   *influx.SeriesCheck // InfluxDB's series count and limit refusals (series.go)
	survey   surveyParts         // NPS survey (survey.go)
	serving  *live.Serving       // recent activations: a QR answer's operator and service
	console  consoleParts        // accounts, access router, web console (console.go)
	reports  reportParts         // report builder (reports.go)
	http     *api.Server
	started  chan struct{} // closed once every part has started
}

// New opens the fleet database and the spool and builds every part,
// adding each to the supervisor after the parts it depends on. Nothing
// listens until Run.
func New(cfg Config, log *slog.Logger) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	a := &App{cfg: cfg, log: log, metrics: prometheus.NewRegistry(), started: make(chan struct{})}
	a.sup.log = log
	defer func() {
		if err != nil {
			a.sup.release()
		}
	}()
	a.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The fleet database first: every other part reads the fleet.
	if err := a.openFleet(); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	if a.creds, err = broker.NewCredentials(a.credentialsOf(a.registry.Current())); err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}

	// Intake: the spool, then the writer that empties it into InfluxDB.
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	a.spool, err = spool.Open(filepath.Join(cfg.DataDir, "spool"), spool.Options{
		MaxBytes: cfg.Spool.MaxBytes, Logger: log.With("part", "spool"),
	})
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	a.sup.add("spool", resource{close: func() error {
		if err := a.spool.Close(); err != nil {
			return fmt.Errorf("spool close: %w", err)
		}
		return nil
	}})
	a.writer, err = influx.NewWriter(a.spool, influx.WriterOptions{
		URL: cfg.Influx.URL, Token: cfg.Influx.Token, Org: cfg.Influx.Org, Bucket: cfg.Influx.Bucket,
		BatchSize: cfg.Influx.BatchSize, FlushInterval: cfg.Influx.FlushInterval,
		Logger: log.With("part", "influx"), Registerer: a.metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("influx writer: %w", err)
	}
	a.sup.add("influx-writer", PartFunc(a.runWriter))

	// Alerts before ingest: the rating watcher hears every vote.
	if err := a.newAlerts(); err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	a.ingest, err = ingest.New(ingest.Options{
		Registry: a.registry.Current, Spool: a.spool, MaxFuture: cfg.Ingest.MaxFuture, MaxAge: cfg.Ingest.MaxAge,
		Logger: log.With("part", "ingest"), Registerer: a.metrics, OnVote: a.onVote(),
	})
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}

	// Configs pushed while disconnected from an external broker failed and
	// are retried by the next sync; a new connection is the moment to do
	// it. The push loop exists once the source does.
	onConnect := func() {
		if a.fleet.push != nil {
			a.fleet.push.Resend()
		}
	}
	if a.source, err = a.newSource(a.ingest, onConnect); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	a.fleet.push = configpush.NewLoop(a.source, a.registry.Current, log.With("part", "devconfig"))
	if err := a.newNotify(); err != nil {
		return nil, err
	}
	if err := a.newHealth(); err != nil {
		return nil, err
	}
	if err := a.newSeriesCheck(); err != nil {
		return nil, err
	}
	a.serving = live.NewServing()
	if err := a.newSurvey(); err != nil {
		return nil, fmt.Errorf("survey: %w", err)
	}
	if err := a.newIncidents(); err != nil {
		return nil, fmt.Errorf("incidents: %w", err)
	}
	incidentRoutes, err := a.incidentRoutes()
	if err != nil {
		return nil, fmt.Errorf("incidents api: %w", err)
	}

	if err := a.newAccess(); err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	if err := a.newReports(); err != nil {
		return nil, err
	}
	handler, err := api.New(api.Options{
		Router:   a.console.router,
		Device:   fleetapi.DeviceLocator(a.fleet.db),
		Token:    cfg.HTTP.Token,
		Ready:    a.Ready,
		Gatherer: a.metrics,
		Activator: api.PublishActivator{Registry: a.registry.Current, Publisher: a.source,
			Sent: func(device string, act protocol.Activate) {
				a.serving.Record(device, act.Operator, act.Service, act.Time)
			}},
		Devices: a.ingest.Devices,
		Summary: a.ingest.Snapshot,
		Logger:  log.With("part", "api"),
		Routes:  slices.Concat(a.fleetRoutes(), a.alertRoutes(), a.healthRoutes(), a.reportRoutes(), a.surveyRoutes(), incidentRoutes),
	})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if err := a.newConsole(); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	if err := a.addReportPage(); err != nil {
		return nil, fmt.Errorf("reports page: %w", err)
	}
	if err := a.addSurveyPages(); err != nil {
		return nil, fmt.Errorf("survey pages: %w", err)
	}
	if err := a.addIncidentPages(); err != nil {
		return nil, fmt.Errorf("incident pages: %w", err)
	}
	a.http, err = api.NewServer(web.Protect(handler), api.ServerOptions{
		Addr: cfg.HTTP.Addr, CertFile: cfg.HTTP.CertFile, KeyFile: cfg.HTTP.KeyFile,
		MaxConnsPerAddr: cmp.Or(cfg.HTTP.MaxConnsPerAddr, DefaultHTTPConnsPerAddr),
		Logger:          log, Registerer: a.metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}

	// The start order, which is the reverse of the stop order: what stores
	// messages starts first and stops last. MQTT listens before HTTP
	// answers, so a probe that gets /healthz finds the broker up.
	a.sup.add("mqtt", a.source)
	a.sup.add("http", a.http)
	if every := cfg.MQTT.TimeBeacon; every >= 0 {
		a.sup.add("time-beacon", PartFunc(func(ctx context.Context) error {
			timebeacon.Run(ctx, a.source, every, log.With("part", "timebeacon"))
			return nil
		}))
	}
	a.sup.add("config-push", a.fleet.push)
	if err := a.newRollup(); err != nil {
		return nil, fmt.Errorf("rollup: %w", err)
	}
	if err := a.newAggregates(); err != nil {
		return nil, fmt.Errorf("aggregates: %w", err)
	}
	a.addHealth()
	a.addSurvey()
	a.sup.add("series-check", optional(a.log, "series check", a.series))
	return a, nil
}

// credentialsOf lists the MQTT accounts: the configured ones, then every
// device of the fleet.
func (a *App) credentialsOf(r *registry.Registry) []broker.Credential {
	list := append([]broker.Credential(nil), a.cfg.MQTT.Accounts...)
	for _, c := range r.Credentials() {
		list = append(list, broker.Credential{Username: c.Device, Hash: c.Hash, Role: broker.RoleDevice})
	}
	return list
}

// Run starts every part and serves until ctx is done or a part fails,
// then stops the parts in the reverse order of their start, which loses
// nothing: stop the scheduled jobs, stop serving HTTP, stop taking
// messages (MQTT), stop the alerts, let the writer flush what it can,
// close the spool and the fleet database. What the writer could not flush stays
// in the spool for the next start. Run may be called once.
func (a *App) Run(ctx context.Context) error {
	return a.sup.run(ctx, func() {
		close(a.started)
		a.log.Info("backend up", "mqtt", a.MQTTAddr(), "http", a.HTTPAddr(), "influx", a.cfg.Influx.URL)
	})
}

// Close releases an App whose Run was never called (Run releases
// everything itself when it returns).
func (a *App) Close() { a.sup.release() }

// runWriter runs the InfluxDB writer. Stopped, it first gives the writer up
// to three seconds to empty the spool, so a clean stop leaves nothing for
// the next start when InfluxDB is up.
func (a *App) runWriter(ctx context.Context) error {
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	done := make(chan error, 1)
	go func() { done <- a.writer.Run(wctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if a.spool.Stats().PendingRecords == 0 {
			break
		}
	}
	stop()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Ready says whether the backend can take and store votes now.
func (a *App) Ready() error {
	if err := a.source.ready(); err != nil {
		return err
	}
	if st := a.spool.Stats(); st.Full {
		return errors.New("spool full: new messages are not acknowledged until InfluxDB catches up")
	}
	return a.writer.Ready()
}

// Started is closed once every part has started: the broker and the HTTP
// API listen.
func (a *App) Started() <-chan struct{} { return a.started }

// MQTTAddr is the broker's actual listening address (useful with port 0),
// or the external broker's URL.
func (a *App) MQTTAddr() string { return a.source.addr() }

// MQTTTLSAddr is the embedded broker's MQTT-over-TLS address ("" when it
// has none or the broker is external).
func (a *App) MQTTTLSAddr() string { return a.source.tlsAddr() }

// HTTPAddr is the API's actual listening address, once Started is closed.
func (a *App) HTTPAddr() string { return a.http.Addr() }

// Summary is the live view for status lines.
func (a *App) Summary() ingest.Summary { return a.ingest.Snapshot() }

// WriterStats reports the InfluxDB writer's progress and backlog.
func (a *App) WriterStats() influx.WriterStats { return a.writer.Stats() }

// ReloadRegistry applies the fleet file to the fleet database if the file
// changed (see backend/fleet/fleetdb); the new snapshot replaces the
// registry, credentials and configs. On error the current fleet stays in
// force.
func (a *App) ReloadRegistry() error { return a.reloadFleet() }
