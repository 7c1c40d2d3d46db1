// Package sqlite stores alerts, their audit trail and silences in an
// SQLite file (modernc.org/sqlite: pure Go, no cgo). It implements
// alert.Store.
//
// Each alert is kept as JSON beside the columns that filters use, so a
// field added to alert.Alert needs no migration.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/semko/semko/internal/sqldoc"
	"github.com/semko/semko/internal/sqlitedb"

	"github.com/semko/semko/backend/alert"
)

const schema = `
CREATE TABLE IF NOT EXISTS alerts (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	state      TEXT NOT NULL,
	kind       TEXT NOT NULL,
	severity   TEXT NOT NULL,
	org        TEXT NOT NULL,
	site       TEXT NOT NULL,
	device     TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	doc        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state, updated_at);
CREATE INDEX IF NOT EXISTS alerts_updated ON alerts(updated_at);
CREATE TABLE IF NOT EXISTS events (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	alert_id INTEGER NOT NULL REFERENCES alerts(id),
	time     INTEGER NOT NULL,
	doc      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_alert ON events(alert_id, id);
CREATE TABLE IF NOT EXISTS silences (
	id  TEXT PRIMARY KEY,
	doc TEXT NOT NULL
);`

// Store is an alert.Store in one SQLite file.
type Store struct {
	db *sql.DB
}

var (
	_ alert.Store   = (*Store)(nil)
	_ alert.Updater = (*Store)(nil)
)

// Open opens or creates the database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.Open(ctx, path, schema, "alert store")
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
		res, err := tx.ExecContext(ctx, `INSERT INTO alerts (state, kind, severity, org, site, device, updated_at, doc) VALUES (?,?,?,?,?,?,?,'{}')`,
			a.State, a.Kind, a.Severity, a.Subject.Org, a.Subject.Site, a.Subject.Device, a.UpdatedAt.UnixNano())
		if err != nil {
			return fmt.Errorf("insert alert: %w", err)
		}
		if a.ID, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("insert alert: %w", err)
		}
	}
	doc, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE alerts SET state=?, kind=?, severity=?, org=?, site=?, device=?, updated_at=?, doc=? WHERE id=?`,
		a.State, a.Kind, a.Severity, a.Subject.Org, a.Subject.Site, a.Subject.Device, a.UpdatedAt.UnixNano(), doc, a.ID)
	if err != nil {
		return fmt.Errorf("update alert %d: %w", a.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("update alert %d: %w", a.ID, alert.ErrNotFound)
	}
	if ev != nil {
		ev.AlertID = a.ID
		res, err := tx.ExecContext(ctx, `INSERT INTO events (alert_id, time, doc) VALUES (?,?,'{}')`, a.ID, ev.Time.UnixNano())
		if err != nil {
			return fmt.Errorf("insert event: %w", err)
		}
		if ev.ID, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("insert event: %w", err)
		}
		edoc, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE events SET doc=? WHERE id=?`, edoc, ev.ID); err != nil {
			return fmt.Errorf("update event: %w", err)
		}
	}
	return nil
}

// Update implements alert.Updater. The store's one connection makes the
// transaction's read and write atomic (see internal/sqlitedb).
func (s *Store) Update(ctx context.Context, w alert.Which, fn func(cur *alert.Alert) (*alert.Alert, *alert.Event, error)) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	var cur *alert.Alert
	if w.ID != 0 {
		list, err := sqldoc.Query[alert.Alert](ctx, tx, "alerts", `SELECT doc FROM alerts WHERE id = ?`, w.ID)
		if err != nil {
			return err
		}
		if len(list) > 0 {
			cur = &list[0]
		}
	} else {
		key := string(w.Kind) + "|" + w.Subject.Key()
		list, err := sqldoc.Query[alert.Alert](ctx, tx, "alerts", `SELECT doc FROM alerts WHERE kind = ? AND org = ? AND site = ? AND device = ? AND state <> ? ORDER BY id`,
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
	return s.query(ctx, `SELECT doc FROM alerts WHERE state <> ? ORDER BY updated_at DESC`, alert.StateResolved)
}

// Alerts implements alert.Store.
func (s *Store) Alerts(ctx context.Context, f alert.Filter) ([]alert.Alert, error) {
	var where []string
	var args []any
	eq := func(col string, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	switch f.State {
	case "":
	case "open":
		where = append(where, "state <> ?")
		args = append(args, alert.StateResolved)
	default:
		eq("state", f.State)
	}
	eq("kind", string(f.Kind))
	eq("severity", string(f.Severity))
	eq("org", f.Org)
	eq("site", f.Site)
	eq("device", f.Device)
	if !f.Since.IsZero() {
		where = append(where, "updated_at >= ?")
		args = append(args, f.Since.UnixNano())
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
	list, err := s.query(ctx, `SELECT doc FROM alerts WHERE id = ?`, id)
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
	return sqldoc.Query[alert.Event](ctx, s.db, "events", `SELECT doc FROM events WHERE alert_id = ? ORDER BY id`, alertID)
}

// SaveSilence implements alert.Store.
func (s *Store) SaveSilence(ctx context.Context, sl alert.Silence) error {
	doc, err := json.Marshal(sl)
	if err != nil {
		return fmt.Errorf("encode silence: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT OR REPLACE INTO silences (id, doc) VALUES (?, ?)`, sl.ID, doc); err != nil {
		return fmt.Errorf("save silence: %w", err)
	}
	return nil
}

// DeleteSilence implements alert.Store.
func (s *Store) DeleteSilence(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM silences WHERE id = ?`, id)
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
	return sqldoc.Query[alert.Silence](ctx, s.db, "silences", `SELECT doc FROM silences`)
}

// PurgeResolved deletes alerts resolved before cutoff with their audit
// trail, to bound the file; it returns how many alerts went.
func (s *Store) PurgeResolved(ctx context.Context, cutoff time.Time) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	cond := `state = ? AND updated_at < ?`
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
