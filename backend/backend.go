// Package backend wires Semko's server side together: the embedded broker,
// ingest, the durable spool, the InfluxDB writer, the registry and the HTTP
// API. It holds no logic of its own beyond the wiring and the order of
// start-up and shutdown; each part lives in its own package.
package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/semko/semko/backend/api"
	"github.com/semko/semko/backend/intake/influx"
	"github.com/semko/semko/backend/intake/ingest"
	"github.com/semko/semko/backend/intake/spool"
	"github.com/semko/semko/backend/rollup"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/internal/tlsconf"
)

// App is one backend process.
type App struct {
	cfg      Config
	log      *slog.Logger
	metrics  *prometheus.Registry
	registry *registry.Store
	creds    *broker.Credentials
	spool    *spool.Spool
	writer   *influx.Writer
	ingest   *ingest.Ingest
	broker   *broker.Broker // nil with an external broker
	ext      externalMQTT   // the client of an external broker (wire_mqttin.go)
	rollup   *rollup.Job    // nil when disabled
	fleet    fleetParts     // fleet database and config pusher (wire_fleet.go)
	health   healthParts    // diagnostics and lifecycle reminders (wire_diagnostics.go)
	alerts   alertParts     // alert manager and rating watcher (wire_alerts.go)

	httpLn    net.Listener
	httpSrv   *http.Server
	httpGuard *httpGuard    // per-address connection limit (wire_http.go)
	started   chan struct{} // closed once the broker and HTTP listen
}

// New opens the registry and the spool and builds every part. Nothing
// listens until Run.
func New(cfg Config, log *slog.Logger) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	a := &App{cfg: cfg, log: log, metrics: prometheus.NewRegistry(), started: make(chan struct{})}
	defer func() {
		if err != nil {
			a.release()
		}
	}()
	a.httpGuard = newHTTPGuard(cfg.HTTP.MaxConnsPerAddr)
	a.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		a.httpGuard.refused)

	reg, err := a.openFleet()
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	a.registry = reg
	if a.creds, err = broker.NewCredentials(a.credentialsOf(reg.Current())); err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}

	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	a.spool, err = spool.Open(filepath.Join(cfg.DataDir, "spool"), spool.Options{
		MaxBytes: cfg.Spool.MaxBytes, Logger: log.With("part", "spool"),
	})
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	a.writer, err = influx.NewWriter(a.spool, influx.WriterOptions{
		URL: cfg.Influx.URL, Token: cfg.Influx.Token, Org: cfg.Influx.Org, Bucket: cfg.Influx.Bucket,
		BatchSize: cfg.Influx.BatchSize, FlushInterval: cfg.Influx.FlushInterval,
		Logger: log.With("part", "influx"), Registerer: a.metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("influx writer: %w", err)
	}
	if err := a.newAlerts(reg); err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	a.ingest, err = ingest.New(ingest.Options{
		Registry: reg.Current, Spool: a.spool, MaxFuture: cfg.Ingest.MaxFuture, MaxAge: cfg.Ingest.MaxAge,
		Logger: log.With("part", "ingest"), Registerer: a.metrics, OnVote: a.onVote(),
	})
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}

	if cfg.MQTT.External.URL != "" {
		if err := a.newExternalMQTT(); err != nil {
			return nil, fmt.Errorf("mqtt: %w", err)
		}
	} else {
		bopts := broker.Options{
			TCPAddr:     cfg.MQTT.Addr,
			DataDir:     filepath.Join(cfg.DataDir, "broker"),
			Credentials: a.creds,
			Intake: broker.IntakeFunc(func(ctx context.Context, m broker.Message) error {
				return a.ingest.Accept(ctx, m.Topic, m.Payload, m.Received)
			}),
			Logger:           log.With("part", "broker"),
			MaxInflight:      cfg.MQTT.MaxInflight,
			MaxPendingWrites: cfg.MQTT.MaxPendingWrites,
			PublishRate:      cfg.MQTT.PublishRate,
			PublishBurst:     cfg.MQTT.PublishBurst,
			MaxConnsPerAddr:  cfg.MQTT.MaxConnsPerAddr,
			ConnectTimeout:   cfg.MQTT.ConnectTimeout,
		}
		if cfg.MQTT.TLSAddr != "" {
			tc, err := tlsconf.Server(cfg.MQTT.CertFile, cfg.MQTT.KeyFile, cfg.MQTT.ClientCAFile)
			if err != nil {
				return nil, fmt.Errorf("mqtt tls: %w", err)
			}
			bopts.TLSAddr, bopts.TLSConfig = cfg.MQTT.TLSAddr, tc
		}
		if a.broker, err = broker.New(bopts); err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
		a.metrics.MustRegister(newBrokerCollector(a.broker))
	}

	if err := a.newNotify(); err != nil {
		return nil, err
	}
	if a.rollup, err = a.newRollup(); err != nil {
		return nil, fmt.Errorf("rollup: %w", err)
	}
	if err := a.newHealth(); err != nil {
		return nil, err
	}

	handler, err := api.New(api.Options{
		Token:     cfg.HTTP.Token,
		Ready:     a.Ready,
		Gatherer:  a.metrics,
		Activator: api.PublishActivator{Registry: reg.Current, Publisher: a.publisher()},
		Devices:   a.ingest.Devices,
		Summary:   a.ingest.Snapshot,
		Logger:    log.With("part", "api"),
		Routes:    append(append(a.fleetRoutes(), a.alertRoutes()...), a.healthRoutes()...),
	})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	a.httpSrv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
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

// Run serves until ctx is done, then shuts down in the order that loses
// nothing: stop taking messages (broker), stop serving HTTP, let the writer
// flush what it can, close the spool. What the writer could not flush stays
// in the spool for the next start.
func (a *App) Run(ctx context.Context) error {
	var err error
	if a.httpLn, err = a.listenHTTP(); err != nil {
		a.release()
		return err
	}
	if err := a.startMQTT(ctx); err != nil {
		a.httpLn.Close()
		a.release()
		return fmt.Errorf("broker: %w", err)
	}
	close(a.started)
	a.startFleet(ctx)
	a.startAlerts(ctx)
	a.startHealth()
	a.log.Info("backend up", "mqtt", a.MQTTAddr(), "http", a.httpLn.Addr().String(), "influx", a.cfg.Influx.URL)

	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Go(func() {
		if err := a.writer.Run(writerCtx); err != nil && !errors.Is(err, context.Canceled) {
			errc <- fmt.Errorf("influx writer: %w", err)
		}
	})
	wg.Go(func() {
		var err error
		if a.cfg.HTTP.CertFile != "" {
			err = a.httpSrv.ServeTLS(a.httpLn, a.cfg.HTTP.CertFile, a.cfg.HTTP.KeyFile)
		} else {
			err = a.httpSrv.Serve(a.httpLn)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	})

	if a.rollup != nil {
		if err := a.rollup.Start(ctx); err != nil {
			a.log.Error("rollup job not started", "err", err)
		}
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	a.log.Info("backend stopping")
	a.stopHealth()
	if a.rollup != nil {
		if err := a.rollup.Close(); err != nil {
			a.log.Warn("rollup close", "err", err)
		}
	}
	if err := a.stopMQTT(); err != nil {
		a.log.Warn("broker close", "err", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = a.httpSrv.Shutdown(shutdownCtx)
	cancel()
	if err := a.stopAlerts(); err != nil {
		a.log.Warn("alerts stop", "err", err)
	}
	a.drainWriter(3 * time.Second)
	stopWriter()
	wg.Wait()
	if err := a.spool.Close(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("spool close: %w", err))
	}
	if err := a.closeFleet(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("fleet db close: %w", err))
	}
	a.log.Info("backend stopped")
	return runErr
}

// Close releases an App whose Run was never called (Run releases
// everything itself when it returns).
func (a *App) Close() { a.release() }

// release closes what New opened, on the paths where Run will not get to
// close it (a failed New, a Run that cannot listen).
func (a *App) release() {
	if a.rollup != nil {
		a.rollup.Close()
	}
	if err := a.stopAlerts(); err != nil {
		a.log.Warn("alerts stop", "err", err)
	}
	if a.spool != nil {
		a.spool.Close()
	}
	if err := a.closeFleet(); err != nil {
		a.log.Warn("fleet db close", "err", err)
	}
}

// drainWriter gives the writer a moment to empty the spool before shutdown,
// so a clean stop leaves nothing for the next start when InfluxDB is up.
func (a *App) drainWriter(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if a.spool.Stats().PendingRecords == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Ready says whether the backend can take and store votes now.
func (a *App) Ready() error {
	if err := a.mqttReady(); err != nil {
		return err
	}
	if st := a.spool.Stats(); st.Full {
		return errors.New("spool full: new messages are not acknowledged until InfluxDB catches up")
	}
	return a.writer.Ready()
}

// Started is closed once the broker and the HTTP API are listening.
func (a *App) Started() <-chan struct{} { return a.started }

// MQTTAddr is the broker's actual listening address (useful with port 0).
func (a *App) MQTTAddr() string {
	if a.broker == nil {
		return a.cfg.MQTT.External.URL
	}
	return a.broker.Addr()
}

// HTTPAddr is the API's actual listening address, once Started is closed.
func (a *App) HTTPAddr() string { return a.httpLn.Addr().String() }

// Summary is the live view for status lines.
func (a *App) Summary() ingest.Summary { return a.ingest.Snapshot() }

// WriterStats reports the InfluxDB writer's progress and backlog.
func (a *App) WriterStats() influx.WriterStats { return a.writer.Stats() }

// ReloadRegistry applies the fleet file to the fleet database if the file
// changed (see backend/fleetdb); the new snapshot replaces the registry,
// credentials and configs. On error the current fleet stays in force.
func (a *App) ReloadRegistry() error { return a.reloadFleet() }
