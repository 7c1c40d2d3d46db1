// Package sqlite stores report subscriptions and their deliveries in an
// SQLite file (modernc.org/sqlite: pure Go). It implements delivery.Store.
//
// A subscription is kept as JSON beside its id, so a field added to
// delivery.Subscription needs no migration.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/semko/semko/internal/sqldoc"
	"github.com/semko/semko/internal/sqlitedb"

	"github.com/semko/semko/backend/report/delivery"
)

const schema = `
CREATE TABLE IF NOT EXISTS subscriptions (
	id  INTEGER PRIMARY KEY AUTOINCREMENT,
	doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
	subscription INTEGER NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
	period_start INTEGER NOT NULL,
	status       TEXT NOT NULL,
	attempts     INTEGER NOT NULL,
	last_error   TEXT NOT NULL,
	at           INTEGER NOT NULL,
	PRIMARY KEY (subscription, period_start)
);`

// Store is a delivery.Store in one SQLite file.
type Store struct{ db *sql.DB }

var _ delivery.Store = (*Store)(nil)

// Open opens or creates the database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.Open(ctx, path, schema, "report store")
	if err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Subscribe implements delivery.Store.
func (s *Store) Subscribe(ctx context.Context, sub *delivery.Subscription) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	res, err := tx.ExecContext(ctx, `INSERT INTO subscriptions (doc) VALUES ('{}')`)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	stored := *sub
	stored.ID = id
	doc, err := json.Marshal(stored)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE subscriptions SET doc = ? WHERE id = ?`, string(doc), id); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	sub.ID = id
	return nil
}

// Unsubscribe implements delivery.Store.
func (s *Store) Unsubscribe(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM subscriptions WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("unsubscribe: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return delivery.ErrNotFound
	}
	return nil
}

// Subscriptions implements delivery.Store.
func (s *Store) Subscriptions(ctx context.Context) ([]delivery.Subscription, error) {
	return sqldoc.Query[delivery.Subscription](ctx, s.db, "subscriptions", `SELECT doc FROM subscriptions ORDER BY id`)
}

// Delivery implements delivery.Store.
func (s *Store) Delivery(ctx context.Context, sub int64, periodStart time.Time) (delivery.Delivery, bool, error) {
	row := s.db.QueryRowContext(ctx, `SELECT subscription, period_start, status, attempts, last_error, at FROM deliveries
		WHERE subscription = ? AND period_start = ?`, sub, periodStart.UnixNano())
	d, err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return delivery.Delivery{}, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("read delivery: %w", err)
	}
	return d, true, nil
}

// Record implements delivery.Store.
func (s *Store) Record(ctx context.Context, d delivery.Delivery) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO deliveries (subscription, period_start, status, attempts, last_error, at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (subscription, period_start) DO UPDATE SET
		status = excluded.status, attempts = excluded.attempts, last_error = excluded.last_error, at = excluded.at`,
		d.Subscription, d.PeriodStart.UnixNano(), string(d.Status), d.Attempts, d.LastError, d.At.UnixNano())
	if err != nil {
		return fmt.Errorf("record delivery: %w", err)
	}
	return nil
}

// Deliveries implements delivery.Store.
func (s *Store) Deliveries(ctx context.Context, sub int64) ([]delivery.Delivery, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT subscription, period_start, status, attempts, last_error, at FROM deliveries
		WHERE subscription = ? ORDER BY period_start`, sub)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	var out []delivery.Delivery
	for rows.Next() {
		d, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("list deliveries: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return out, nil
}

func scan(r interface{ Scan(...any) error }) (delivery.Delivery, error) {
	var d delivery.Delivery
	var start, at int64
	var status string
	if err := r.Scan(&d.Subscription, &start, &status, &d.Attempts, &d.LastError, &at); err != nil {
		return d, err
	}
	d.PeriodStart, d.At, d.Status = time.Unix(0, start).UTC(), time.Unix(0, at).UTC(), delivery.Status(status)
	return d, nil
}
