// Package postgres stores alerts, their audit trail and silences in a
// PostgreSQL database the backend replicas share. It implements
// alert.Store with the sqlite package's tables in PostgreSQL's types.
//
// Each alert is kept as JSON beside the columns that filters use, so a
// field added to alert.Alert needs no migration.
package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/semko/semko/internal/pgdb"
	"github.com/semko/semko/internal/sqldoc"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/ratings"
)

const schema = `
CREATE TABLE IF NOT EXISTS alerts (
	id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	state      TEXT NOT NULL,
	kind       TEXT NOT NULL,
	severity   TEXT NOT NULL,
	org        TEXT NOT NULL,
	site       TEXT NOT NULL,
	device     TEXT NOT NULL,
	updated_at BIGINT NOT NULL,
	doc        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state, updated_at);
CREATE INDEX IF NOT EXISTS alerts_updated ON alerts(updated_at);
CREATE TABLE IF NOT EXISTS events (
	id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	alert_id BIGINT NOT NULL REFERENCES alerts(id),
	time     BIGINT NOT NULL,
	doc      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_alert ON events(alert_id, id);
CREATE TABLE IF NOT EXISTS silences (
	id  TEXT PRIMARY KEY,
	doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rating_windows (
	key        TEXT PRIMARY KEY,
	doc        TEXT NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL
);`

// Store is an alert.Store in a PostgreSQL database.
type Store struct {
	db *sql.DB
}

var (
	_ alert.Store     = (*Store)(nil)
	_ alert.Updater   = (*Store)(nil)
	_ ratings.Windows = (*Store)(nil)
)

// Open connects to the database at dsn and creates the tables if missing.
func Open(ctx context.Context, dsn string) (*Store, error) {
	db, err := pgdb.Open(ctx, dsn, "alerts", schema, "alert store")
	if err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Save implements alert.Store.
func (s *Store) Save(ctx context.Context, a *alert.Alert, ev *alert.Event) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := save(ctx, tx, a, ev); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// save inserts or updates a and appends ev within tx.
func save(ctx context.Context, tx *sql.Tx, a *alert.Alert, ev *alert.Event) error {
	if a.ID == 0 {
		// PostgreSQL has no LastInsertId: the new id comes back with RETURNING.
		err := tx.QueryRowContext(ctx, `INSERT INTO alerts (state, kind, severity, org, site, device, updated_at, doc) VALUES ($1,$2,$3,$4,$5,$6,$7,'{}') RETURNING id`,
			a.State, a.Kind, a.Severity, a.Subject.Org, a.Subject.Site, a.Subject.Device, a.UpdatedAt.UnixNano()).Scan(&a.ID)
		if err != nil {
			return fmt.Errorf("insert alert: %w", err)
		}
	}
	doc, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE alerts SET state=$1, kind=$2, severity=$3, org=$4, site=$5, device=$6, updated_at=$7, doc=$8 WHERE id=$9`,
		a.State, a.Kind, a.Severity, a.Subject.Org, a.Subject.Site, a.Subject.Device, a.UpdatedAt.UnixNano(), doc, a.ID)
	if err != nil {
		return fmt.Errorf("update alert %d: %w", a.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("update alert %d: %w", a.ID, alert.ErrNotFound)
	}
	if ev != nil {
		ev.AlertID = a.ID
		err := tx.QueryRowContext(ctx, `INSERT INTO events (alert_id, time, doc) VALUES ($1,$2,'{}') RETURNING id`, a.ID, ev.Time.UnixNano()).Scan(&ev.ID)
		if err != nil {
			return fmt.Errorf("insert event: %w", err)
		}
		edoc, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE events SET doc=$1 WHERE id=$2`, edoc, ev.ID); err != nil {
			return fmt.Errorf("update event: %w", err)
		}
	}
	return nil
}

// Update implements alert.Updater. By id the alert's row is locked (SELECT
// ... FOR UPDATE); by kind and subject a transaction-scoped advisory lock
// on the key comes first, so two replicas raising the same finding take
// turns and the second finds the alert the first inserted. The key is not
// a column: the candidates share kind, organisation, site and device, and
// counter and operator are compared in the decoded alert.
func (s *Store) Update(ctx context.Context, w alert.Which, fn func(cur *alert.Alert) (*alert.Alert, *alert.Event, error)) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	var cur *alert.Alert
	if w.ID != 0 {
		list, err := sqldoc.Query[alert.Alert](ctx, tx, "alerts", `SELECT doc FROM alerts WHERE id = $1 FOR UPDATE`, w.ID)
		if err != nil {
			return err
		}
		if len(list) > 0 {
			cur = &list[0]
		}
	} else {
		key := string(w.Kind) + "|" + w.Subject.Key()
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "semko alert "+key); err != nil {
			return fmt.Errorf("lock alert %s: %w", key, err)
		}
		list, err := sqldoc.Query[alert.Alert](ctx, tx, "alerts", `SELECT doc FROM alerts WHERE kind = $1 AND org = $2 AND site = $3 AND device = $4 AND state <> $5 ORDER BY id FOR UPDATE`,
			w.Kind, w.Subject.Org, w.Subject.Site, w.Subject.Device, alert.StateResolved)
		if err != nil {
			return err
		}
		for i := range list {
			if list[i].Key() == key {
				cur = &list[i]
				break
			}
		}
	}
	a, ev, err := fn(cur)
	if err != nil || a == nil {
		return err
	}
	if err := save(ctx, tx, a, ev); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// OpenAlerts implements alert.Store.
func (s *Store) OpenAlerts(ctx context.Context) ([]alert.Alert, error) {
	return s.query(ctx, `SELECT doc FROM alerts WHERE state <> $1 ORDER BY updated_at DESC`, alert.StateResolved)
}

// Alerts implements alert.Store.
func (s *Store) Alerts(ctx context.Context, f alert.Filter) ([]alert.Alert, error) {
	var where []string
	var args []any
	// arg adds a parameter and returns its placeholder ($1, $2, ...).
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	eq := func(col string, v string) {
		if v != "" {
			where = append(where, col+" = "+arg(v))
		}
	}
	switch f.State {
	case "":
	case "open":
		where = append(where, "state <> "+arg(alert.StateResolved))
	default:
		eq("state", f.State)
	}
	eq("kind", string(f.Kind))
	eq("severity", string(f.Severity))
	eq("org", f.Org)
	eq("site", f.Site)
	eq("device", f.Device)
	if !f.Since.IsZero() {
		where = append(where, "updated_at >= "+arg(f.Since.UnixNano()))
	}
	q := "SELECT doc FROM alerts"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 || limit > alert.MaxList {
		limit = alert.MaxList
	}
	q += fmt.Sprintf(" ORDER BY updated_at DESC, id DESC LIMIT %d", limit)
	return s.query(ctx, q, args...)
}

func (s *Store) query(ctx context.Context, q string, args ...any) ([]alert.Alert, error) {
	return sqldoc.Query[alert.Alert](ctx, s.db, "alerts", q, args...)
}

// Alert implements alert.Store.
func (s *Store) Alert(ctx context.Context, id int64) (alert.Alert, error) {
	list, err := s.query(ctx, `SELECT doc FROM alerts WHERE id = $1`, id)
	if err != nil {
		return alert.Alert{}, err
	}
	if len(list) == 0 {
		return alert.Alert{}, alert.ErrNotFound
	}
	return list[0], nil
}

// Events implements alert.Store.
func (s *Store) Events(ctx context.Context, alertID int64) ([]alert.Event, error) {
	return sqldoc.Query[alert.Event](ctx, s.db, "events", `SELECT doc FROM events WHERE alert_id = $1 ORDER BY id`, alertID)
}

// SaveSilence implements alert.Store.
func (s *Store) SaveSilence(ctx context.Context, sl alert.Silence) error {
	doc, err := json.Marshal(sl)
	if err != nil {
		return fmt.Errorf("encode silence: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO silences (id, doc) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc`, sl.ID, doc); err != nil {
		return fmt.Errorf("save silence: %w", err)
	}
	return nil
}

// DeleteSilence implements alert.Store.
func (s *Store) DeleteSilence(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM silences WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete silence: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return alert.ErrNotFound
	}
	return nil
}

// Silences implements alert.Store.
func (s *Store) Silences(ctx context.Context) ([]alert.Silence, error) {
	return sqldoc.Query[alert.Silence](ctx, s.db, "silences", `SELECT doc FROM silences ORDER BY id COLLATE "C"`)
}

// PurgeResolved deletes alerts resolved before cutoff with their audit
// trail, to bound the file; it returns how many alerts went.
func (s *Store) PurgeResolved(ctx context.Context, cutoff time.Time) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	cond := `state = $1 AND updated_at < $2`
	if _, err := tx.ExecContext(ctx, `DELETE FROM events WHERE alert_id IN (SELECT id FROM alerts WHERE `+cond+`)`, alert.StateResolved, cutoff.UnixNano()); err != nil {
		return 0, fmt.Errorf("purge events: %w", err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM alerts WHERE `+cond, alert.StateResolved, cutoff.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("purge alerts: %w", err)
	}
	n, _ := res.RowsAffected()
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("purge commit: %w", err)
	}
	return n, nil
}

// Site implements ratings.Windows: the site's state is a row of
// rating_windows, locked for the transaction, so replicas taking turns
// each see the votes the others added.
func (s *Store) Site(ctx context.Context, key string, fn func(*ratings.SiteWindow)) error {
	return s.window(ctx, "site "+key, func(w *ratings.SiteWindow) { fn(w) })
}

// Counter implements ratings.Windows, as Site does.
func (s *Store) Counter(ctx context.Context, key string, fn func(run *int)) error {
	return s.window(ctx, "counter "+key, func(w *ratings.SiteWindow) { fn(&w.Streak) })
}

// window applies fn to the state stored under key in one transaction. A
// counter's run is kept in a SiteWindow's Streak: one row shape for both.
func (s *Store) window(ctx context.Context, key string, fn func(*ratings.SiteWindow)) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("rating window %s: begin: %w", key, err)
	}
	defer tx.Rollback()
	// The insert makes the row exist to be locked; a concurrent first
	// insert waits for the other's commit and then does nothing.
	if _, err := tx.ExecContext(ctx, `INSERT INTO rating_windows (key, doc, updated_at) VALUES ($1, '{}', now()) ON CONFLICT (key) DO NOTHING`, key); err != nil {
		return fmt.Errorf("rating window %s: %w", key, err)
	}
	var doc string
	if err := tx.QueryRowContext(ctx, `SELECT doc FROM rating_windows WHERE key = $1 FOR UPDATE`, key).Scan(&doc); err != nil {
		return fmt.Errorf("rating window %s: %w", key, err)
	}
	var w ratings.SiteWindow
	if err := json.Unmarshal([]byte(doc), &w); err != nil {
		return fmt.Errorf("rating window %s: decode: %w", key, err)
	}
	fn(&w)
	out, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("rating window %s: encode: %w", key, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE rating_windows SET doc = $2, updated_at = now() WHERE key = $1`, key, string(out)); err != nil {
		return fmt.Errorf("rating window %s: %w", key, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("rating window %s: commit: %w", key, err)
	}
	return nil
}
