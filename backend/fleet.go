package backend

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/api"
	"github.com/semko/semko/backend/fleet/configpush"
	"github.com/semko/semko/backend/fleet/fleetapi"
	"github.com/semko/semko/backend/fleet/fleetdb"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/fleet/registry"
)

// fleetParts is the fleet database and the loop that pushes the configs
// of its snapshots.
type fleetParts struct {
	db   *fleetdb.DB
	push *configpush.Loop // nil until the message source exists (New)
}

// openFleet opens the fleet database (cfg.FleetDB, default
// <data_dir>/fleet.db), applies the fleet file when it changed since it was
// last applied, and sets the registry store the other parts read.
func (a *App) openFleet() error {
	opts := fleetdb.Options{HashSecret: broker.HashSecret, OnChange: a.fleetChanged, Logger: a.log.With("part", "fleetdb")}
	if opts.DSN = a.postgresDSN(); opts.DSN == "" {
		opts.Path = a.cfg.FleetDB
		if opts.Path == "" {
			opts.Path = filepath.Join(a.cfg.DataDir, "fleet.db")
		}
		if err := os.MkdirAll(filepath.Dir(opts.Path), 0o750); err != nil {
			return fmt.Errorf("fleet db dir: %w", err)
		}
	}
	db, err := fleetdb.Open(context.Background(), opts)
	if err != nil {
		return err
	}
	if _, err := db.ApplyFile(context.Background(), a.cfg.FleetFile, false); err != nil {
		// A bad edit of the file must not keep a backend that has a fleet
		// from restarting (votes would wait): run the database's fleet and
		// say loudly why the file was not applied. With no fleet at all
		// there is nothing to run.
		if db.Current().Len() == 0 {
			db.Close()
			return err
		}
		a.log.Error("fleet file not applied; running the fleet database's last fleet", "err", err)
	}
	a.fleet.db = db
	a.sup.add("fleet-db", resource{close: func() error {
		if err := db.Close(); err != nil {
			return fmt.Errorf("fleet db close: %w", err)
		}
		return nil
	}})
	if opts.DSN != "" {
		// Other replicas' changes reach this one's snapshot.
		a.sup.add("fleet-watch", PartFunc(db.Watch))
	}
	a.registry = registry.NewStore(db.Current())
	return nil
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
	if a.fleet.push != nil {
		a.fleet.push.Kick()
	}
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

// fleetRoutes are the fleet endpoints mounted behind the API token. New
// calls it once, after ingest exists.
func (a *App) fleetRoutes() []api.Route {
	a.registerFleetMetrics()
	var out []api.Route
	for _, rt := range fleetapi.Routes(fleetapi.Options{
		DB: a.fleet.db, Live: a.ingest.Devices, Logger: a.log.With("part", "fleetapi"),
	}) {
		out = append(out, api.Route{Pattern: rt.Pattern, Handler: rt.Handler, Rule: rt.Rule})
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
