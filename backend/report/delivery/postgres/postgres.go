// Package postgres stores report subscriptions and their deliveries in
// PostgreSQL (through internal/pgdb: pgx's database/sql driver), for a
// cluster of backend replicas sharing one database. It implements
// delivery.Store and passes the same storetest suite as the SQLite store.
//
// A subscription is kept as JSON (json, kept as written; jsonb would
// refuse a \u0000 that SQLite takes) beside its id, so a field added
// to delivery.Subscription needs no migration. Period starts and times are
// unix nanoseconds in bigint, as in the SQLite store: a period is found by
// the exact instant the job computed, whatever its zone. The tables live
// in the "reports" namespace (pgdb).
package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/semko/semko/internal/pgdb"
	"github.com/semko/semko/internal/sqldoc"

	"github.com/semko/semko/backend/report/delivery"
)

const schema = `
CREATE TABLE IF NOT EXISTS report_subscriptions (
	id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	doc json NOT NULL
);
CREATE TABLE IF NOT EXISTS report_deliveries (
	subscription bigint NOT NULL REFERENCES report_subscriptions(id) ON DELETE CASCADE,
	period_start bigint NOT NULL,
	status       text NOT NULL,
	attempts     integer NOT NULL,
	last_error   text NOT NULL,
	at           bigint NOT NULL,
	PRIMARY KEY (subscription, period_start)
);`

// Store is a delivery.Store in PostgreSQL.
type Store struct{ db *sql.DB }

var _ delivery.Store = (*Store)(nil)

// Open connects to the database at dsn (a PostgreSQL URL or key=value
// string) and creates the tables it lacks.
func Open(ctx context.Context, dsn string) (*Store, error) {
	db, err := pgdb.Open(ctx, dsn, "reports", schema, "report store")
	if err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Close closes the connections.
func (s *Store) Close() error { return s.db.Close() }

// Subscribe implements delivery.Store. The id is drawn first, so the
// stored document carries it and is written once.
func (s *Store) Subscribe(ctx context.Context, sub *delivery.Subscription) error {
	var id int64
	if err := s.db.QueryRowContext(ctx, `SELECT nextval(pg_get_serial_sequence('report_subscriptions', 'id'))`).Scan(&id); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	stored := *sub
	stored.ID = id
	doc, err := json.Marshal(stored)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO report_subscriptions (id, doc) OVERRIDING SYSTEM VALUE VALUES ($1, $2)`,
		id, string(doc)); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	sub.ID = id
	return nil
}

// Unsubscribe implements delivery.Store.
func (s *Store) Unsubscribe(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM report_subscriptions WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("unsubscribe: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("unsubscribe: %w", err)
	}
	if n == 0 {
		return delivery.ErrNotFound
	}
	return nil
}

// Subscriptions implements delivery.Store.
func (s *Store) Subscriptions(ctx context.Context) ([]delivery.Subscription, error) {
	return sqldoc.Query[delivery.Subscription](ctx, s.db, "subscriptions", `SELECT doc FROM report_subscriptions ORDER BY id`)
}

const cols = `subscription, period_start, status, attempts, last_error, at`

// Delivery implements delivery.Store.
func (s *Store) Delivery(ctx context.Context, sub int64, periodStart time.Time) (delivery.Delivery, bool, error) {
	d, err := scan(s.db.QueryRowContext(ctx, `SELECT `+cols+` FROM report_deliveries
		WHERE subscription = $1 AND period_start = $2`, sub, periodStart.UnixNano()))
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
	_, err := s.db.ExecContext(ctx, `INSERT INTO report_deliveries (`+cols+`)
		VALUES ($1, $2, $3, $4, $5, $6)
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
	rows, err := s.db.QueryContext(ctx, `SELECT `+cols+` FROM report_deliveries
		WHERE subscription = $1 ORDER BY period_start`, sub)
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
