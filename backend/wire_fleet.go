package backend

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/semko/semko/backend/api"
	"github.com/semko/semko/backend/devconfig"
	"github.com/semko/semko/backend/fleetdb"
	"github.com/semko/semko/backend/fleetdb/fleetapi"
	"github.com/semko/semko/backend/registry"
	"github.com/semko/semko/broker"
)

// fleetParts is the fleet database and the config pusher fed by its
// snapshots.
type fleetParts struct {
	db *fleetdb.DB

	mu     sync.Mutex        // guards pusher against a change racing startFleet
	pusher *devconfig.Pusher // nil until the broker is up
}

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
	db, err := fleetdb.Open(context.Background(), fleetdb.Options{
		Path: path, HashSecret: broker.HashSecret, OnChange: a.fleetChanged,
		Logger: a.log.With("part", "fleetdb"),
	})
	if err != nil {
		return nil, err
	}
	a.fleet.db = db
	if _, err := db.ApplyFile(context.Background(), a.cfg.FleetFile, false); err != nil {
		db.Close()
		return nil, err
	}
	return registry.NewStore(db.Current()), nil
}

// fleetChanged swaps in a new snapshot: registry (ingest, activations),
// broker credentials, and the retained configs of the devices it changes.
// fleetdb calls it under its write lock, so calls come in commit order.
func (a *App) fleetChanged(r *registry.Registry) {
	if a.registry == nil {
		return // still opening: New builds everything from the first snapshot
	}
	a.registry.Set(r)
	if err := a.creds.Replace(credentialsOf(r)); err != nil {
		a.log.Error("fleet changed but broker credentials not replaced", "err", err)
	}
	a.pushConfigs(r)
}

// startFleet creates the pusher once the broker runs and publishes every
// device's config; the broker's retained store makes this idempotent.
func (a *App) startFleet() {
	a.fleet.mu.Lock()
	a.fleet.pusher = devconfig.NewPusher(a.publisher(), a.log.With("part", "devconfig"))
	a.fleet.mu.Unlock()
	a.pushConfigs(a.registry.Current())
}

func (a *App) pushConfigs(r *registry.Registry) {
	a.fleet.mu.Lock()
	defer a.fleet.mu.Unlock()
	if a.fleet.pusher == nil {
		return
	}
	// A failed publish is retried with the next change or restart; the
	// edge keeps running its last config meanwhile.
	if _, err := a.fleet.pusher.Sync(r.Configs()); err != nil {
		a.log.Warn("config push incomplete", "err", err)
	}
}

// fleetRoutes are the fleet endpoints mounted behind the API token.
func (a *App) fleetRoutes() []api.Route {
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
