package backend

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/semko/semko/backend/account"
	accountpg "github.com/semko/semko/backend/account/postgres"
	accountsqlite "github.com/semko/semko/backend/account/sqlite"
	"github.com/semko/semko/backend/alert"
	alertpg "github.com/semko/semko/backend/alert/postgres"
	alertsqlite "github.com/semko/semko/backend/alert/sqlite"
)

// DatabaseConfig says where the fleet and people's data live: SQLite files
// under data_dir on one machine (the default), or one PostgreSQL database
// that several backend replicas share (deploy/cluster/README.md).
type DatabaseConfig struct {
	// Postgres is a PostgreSQL connection URL, e.g.
	// "postgres://semko@db.internal:5432/semko?sslmode=verify-full". When
	// set, the fleet, alerts, accounts and sessions live there instead of
	// fleet_db, alerts.store and console.store. Keep the password out of
	// the file: the driver (pgx) reads PGPASSWORD and ~/.pgpass.
	Postgres string `yaml:"postgres"`
}

func (c DatabaseConfig) validate() error {
	if c.Postgres == "" {
		return nil
	}
	if _, err := pgx.ParseConfig(c.Postgres); err != nil {
		return fmt.Errorf("database: postgres: %w", err)
	}
	return nil
}

// postgresDSN is the one place that knows whether the stores are shared:
// the DSN of the PostgreSQL database, or "" for SQLite files. Every store
// opener below asks it; a new store adds its opener here.
func (a *App) postgresDSN() string { return a.cfg.Database.Postgres }

// alertStore is an alert store the backend can close.
type alertStore interface {
	alert.Store
	Close() error
}

// openAlertStore opens the alert store: PostgreSQL when shared, else the
// SQLite file at path.
func (a *App) openAlertStore(ctx context.Context, path string) (alertStore, error) {
	if dsn := a.postgresDSN(); dsn != "" {
		return alertpg.Open(ctx, dsn)
	}
	return alertsqlite.Open(ctx, path)
}

// accountStore is an account store the backend can close.
type accountStore interface {
	account.Store
	Close() error
}

// openAccountStore opens the account store (accounts, sessions, tokens,
// audit): PostgreSQL when shared, else the SQLite file at path.
func (a *App) openAccountStore(ctx context.Context, path string) (accountStore, error) {
	if dsn := a.postgresDSN(); dsn != "" {
		return accountpg.Open(ctx, dsn)
	}
	return accountsqlite.Open(ctx, path)
}
