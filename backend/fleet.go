package backend

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/api"
	"github.com/semko/semko/backend/fleet/fleetapi"
	"github.com/semko/semko/backend/fleet/fleetdb"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/fleet/devconfig"
	"github.com/semko/semko/fleet/registry"
)

// fleetParts is the fleet database and the loop that pushes the configs
// of its snapshots.
type fleetParts struct {
	db   *fleetdb.DB
	kick chan struct{} // cap 1: a new snapshot is waiting to be pushed
	done chan struct{} // closed when the push loop ends; nil before startFleet
	// resend asks the loop to publish every config again, not only changes:
	// set on a new connection to an external broker, which may have lost
	// its retained messages.
	resend atomic.Bool
}

// pushRetry is how soon a push that failed (broker unreachable) is tried
// again when no change comes first.
const pushRetry = 10 * time.Second

// openFleet opens the fleet database (cfg.FleetDB, default
// <data_dir>/fleet.db), applies the fleet file when it changed since it was
// last applied, and returns the registry store the other parts read.
func (a *App) openFleet() (*registry.Store, error) {
	path := a.cfg.FleetDB
	if path == "" {
		path = filepath.Join(a.cfg.DataDir, "fleet.db")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("fleet db dir: %w", err)
	}
	a.fleet.kick = make(chan struct{}, 1)
	db, err := fleetdb.Open(context.Background(), fleetdb.Options{
		Path: path, HashSecret: broker.HashSecret, OnChange: a.fleetChanged,
		Logger: a.log.With("part", "fleetdb"),
	})
	if err != nil {
		return nil, err
	}
	a.fleet.db = db
	if _, err := db.ApplyFile(context.Background(), a.cfg.FleetFile, false); err != nil {
		// A bad edit of the file must not keep a backend that has a fleet
		// from restarting (votes would wait): run the database's fleet and
		// say loudly why the file was not applied. With no fleet at all
		// there is nothing to run.
		if db.Current().Len() == 0 {
			db.Close()
			return nil, err
		}
		a.log.Error("fleet file not applied; running the fleet database's last fleet", "err", err)
	}
	return registry.NewStore(db.Current()), nil
}

// fleetChanged swaps in a new snapshot: registry (ingest, activations) and
// broker credentials at once, configs through the push loop. fleetdb calls
// it under its write lock, in commit order, so it must not block: a
// publish to an external broker may take seconds.
func (a *App) fleetChanged(r *registry.Registry) {
	if a.registry == nil {
		return // still opening: New builds everything from the first snapshot
	}
	a.registry.Set(r)
	if err := a.creds.Replace(a.credentialsOf(r)); err != nil {
		a.log.Error("fleet changed but broker credentials not replaced", "err", err)
	}
	a.kickPush()
}

func (a *App) kickPush() {
	select {
	case a.fleet.kick <- struct{}{}:
	default: // a push is pending already; it will read the newest snapshot
	}
}

// pushConfigs has the loop publish every managed device's config again
// (for a new connection to an external broker). It does not block; the
// loop reads the current snapshot itself, so r only documents the caller's
// intent.
func (a *App) pushConfigs(_ *registry.Registry) {
	a.fleet.resend.Store(true)
	a.kickPush()
}

// registerFleetMetrics exposes the fleet's size and how many managed
// devices do not run their desired configuration, computed at scrape time.
func (a *App) registerFleetMetrics() {
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "semko_fleet_devices", Help: "Active devices in the fleet.",
		}, func() float64 { return float64(a.registry.Current().Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "semko_fleet_config_out_of_sync",
			Help: "Managed devices whose last confirmed configuration is not the desired one (pending or refused).",
		}, a.configOutOfSync),
	} {
		if err := a.metrics.Register(c); err != nil {
			a.log.Warn("fleet metrics not registered", "err", err)
		}
	}
}

func (a *App) configOutOfSync() float64 {
	reg := a.registry.Current()
	desired := reg.Configs()
	n := 0
	for _, st := range a.ingest.Devices() {
		if c, ok := desired[st.Device]; ok && st.ConfigVersion != c.Version {
			n++
		}
	}
	return float64(n)
}

// startFleet starts the push loop once MQTT is up. It runs until ctx ends;
// closeFleet waits for it.
func (a *App) startFleet(ctx context.Context) {
	a.fleet.done = make(chan struct{})
	pusher := devconfig.NewPusher(a.publisher(), a.log.With("part", "devconfig"))
	// The broker may retain configs from an earlier run for devices no
	// longer managed: clear them once.
	var all []string
	for _, d := range a.registry.Current().Devices() {
		all = append(all, d.ID)
	}
	pusher.Suspect(all)
	go func() {
		defer close(a.fleet.done)
		a.pushLoop(ctx, pusher)
	}()
}

// pushLoop publishes the managed devices' configs at start, after every
// change, and again after a failure. The broker retains them, and the
// pusher skips what it already published, so a push is cheap to repeat.
func (a *App) pushLoop(ctx context.Context, p *devconfig.Pusher) {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		if a.fleet.resend.Swap(false) {
			p.Forget()
		}
		if _, err := p.Sync(a.registry.Current().Configs()); err != nil {
			a.log.Warn("config push incomplete, retrying", "in", pushRetry, "err", err)
			retry.Reset(pushRetry)
		}
		select {
		case <-ctx.Done():
			return
		case <-a.fleet.kick:
		case <-retry.C:
		}
	}
}

// closeFleet waits for the push loop (its ctx is done) and closes the
// database.
func (a *App) closeFleet() error {
	if a.fleet.done != nil {
		<-a.fleet.done
	}
	if a.fleet.db == nil {
		return nil
	}
	return a.fleet.db.Close()
}

// fleetRoutes are the fleet endpoints mounted behind the API token.
func (a *App) fleetRoutes() []api.Route {
	a.registerFleetMetrics() // here: New calls this once, after ingest exists
	var out []api.Route
	for _, rt := range fleetapi.Routes(fleetapi.Options{
		DB: a.fleet.db, Live: a.ingest.Devices, Logger: a.log.With("part", "fleetapi"),
	}) {
		out = append(out, api.Route{Pattern: rt.Pattern, Handler: rt.Handler})
	}
	return out
}

// reloadFleet applies the fleet file if it changed; the new snapshot
// reaches every part through fleetChanged.
func (a *App) reloadFleet() error {
	if _, err := a.fleet.db.ApplyFile(context.Background(), a.cfg.FleetFile, false); err != nil {
		return fmt.Errorf("reload fleet, keeping the current one: %w", err)
	}
	return nil
}

// Fleet is the fleet database, for tests and embedding programs.
func (a *App) Fleet() *fleetdb.DB { return a.fleet.db }
