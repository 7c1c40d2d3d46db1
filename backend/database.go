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
	"github.com/semko/semko/backend/incident"
	incidentpg "github.com/semko/semko/backend/incident/postgres"
	incidentsqlite "github.com/semko/semko/backend/incident/sqlite"
	"github.com/semko/semko/backend/report/delivery"
	deliverypg "github.com/semko/semko/backend/report/delivery/postgres"
	deliverysqlite "github.com/semko/semko/backend/report/delivery/sqlite"
	"github.com/semko/semko/backend/survey"
	surveypg "github.com/semko/semko/backend/survey/postgres"
	surveysqlite "github.com/semko/semko/backend/survey/sqlite"
)

// DatabaseConfig says where the fleet and people's data live: SQLite files
// under data_dir on one machine (the default), or one PostgreSQL database
// that several backend replicas share (deploy/cluster/README.md).
type DatabaseConfig struct {
	// Postgres is a PostgreSQL connection URL, e.g.
	// "postgres://semko@db.internal:5432/semko?sslmode=verify-full". When
	// set, the fleet, alerts, accounts and sessions, surveys, incidents
	// (with their attachments) and report subscriptions live there instead
	// of fleet_db, alerts.store, console.store, survey.store,
	// incidents.store and files_dir, and reports.store. Keep the password out of
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

// openSurveyStore opens the survey store: PostgreSQL when shared, else the
// SQLite file at path.
func (a *App) openSurveyStore(ctx context.Context, path string) (survey.Store, error) {
	if dsn := a.postgresDSN(); dsn != "" {
		return surveypg.Open(ctx, dsn)
	}
	return surveysqlite.Open(ctx, path)
}

// openIncidents opens the incident store and the attachment files: both in
// PostgreSQL when shared (any replica serves a file another took), else the
// SQLite file at path and the directory filesDir.
func (a *App) openIncidents(ctx context.Context, path, filesDir string, max int64) (incident.Store, *incident.Files, error) {
	if dsn := a.postgresDSN(); dsn != "" {
		s, err := incidentpg.Open(ctx, dsn)
		if err != nil {
			return nil, nil, err
		}
		return s, incident.NewFilesIn(s.Blobs(), max), nil
	}
	files, err := incident.NewFiles(filesDir, max)
	if err != nil {
		return nil, nil, err
	}
	s, err := incidentsqlite.Open(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	return s, files, nil
}

// deliveryStore is a report subscription store the backend can close.
type deliveryStore interface {
	delivery.Store
	Close() error
}

// openDeliveryStore opens the report subscriptions and deliveries:
// PostgreSQL when shared, else the SQLite file at path.
func (a *App) openDeliveryStore(ctx context.Context, path string) (deliveryStore, error) {
	if dsn := a.postgresDSN(); dsn != "" {
		return deliverypg.Open(ctx, dsn)
	}
	return deliverysqlite.Open(ctx, path)
}
