// Package sqlite keeps incidents and their trails in an SQLite file
// (modernc.org/sqlite: pure Go, no cgo). It implements incident.Store.
//
// Each incident is kept as JSON beside the columns filters and deadlines
// use, so a field added to incident.Incident needs no migration.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/semko/semko/internal/sqldoc"
	"github.com/semko/semko/internal/sqlitedb"

	"github.com/semko/semko/backend/incident"
)

const schema = `
CREATE TABLE IF NOT EXISTS incidents (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	org        TEXT NOT NULL,
	site       TEXT NOT NULL,
	department TEXT NOT NULL,
	state      TEXT NOT NULL,
	due_at     INTEGER NOT NULL,  -- unix ns; 0 when none
	overdue    INTEGER NOT NULL,
	closed_at  INTEGER NOT NULL,
	personal   INTEGER NOT NULL,  -- 1 while a name or contact is kept
	doc        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_scope ON incidents(org, site, id);
CREATE INDEX IF NOT EXISTS incidents_due ON incidents(state, overdue, due_at);
CREATE TABLE IF NOT EXISTS steps (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	incident_id INTEGER NOT NULL REFERENCES incidents(id),
	doc         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS steps_incident ON steps(incident_id, id);`

// Store is an incident.Store in one SQLite file.
type Store struct{ db *sql.DB }

var _ incident.Store = (*Store)(nil)

// Open opens or creates the database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.Open(ctx, path, schema, "incident store")
	if err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Create implements incident.Store.
func (s *Store) Create(ctx context.Context, in *incident.Incident, st *incident.Step) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO incidents(org, site, department, state, due_at, overdue, closed_at, personal, doc)
			VALUES(?,?,?,?,?,?,?,?,'{}')`, in.Org, in.Site, in.Department, in.State, ns(in.DueAt), b2i(in.Overdue), ns(in.ClosedAt),
			b2i(in.CustomerName != "" || in.CustomerContact != ""))
		if err != nil {
			return fmt.Errorf("insert incident: %w", err)
		}
		if in.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		return s.write(ctx, tx, in, st)
	})
}

// Save implements incident.Store.
func (s *Store) Save(ctx context.Context, in *incident.Incident, st *incident.Step) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE incidents SET org=?, site=?, department=?, state=?, due_at=?, overdue=?, closed_at=?, personal=? WHERE id=?`,
			in.Org, in.Site, in.Department, in.State, ns(in.DueAt), b2i(in.Overdue), ns(in.ClosedAt),
			b2i(in.CustomerName != "" || in.CustomerContact != ""), in.ID)
		if err != nil {
			return fmt.Errorf("update incident: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return incident.ErrNotFound
		}
		return s.write(ctx, tx, in, st)
	})
}

// write stores the document and appends the step.
func (s *Store) write(ctx context.Context, tx *sql.Tx, in *incident.Incident, st *incident.Step) error {
	doc, err := json.Marshal(in)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE incidents SET doc=? WHERE id=?`, doc, in.ID); err != nil {
		return fmt.Errorf("write incident: %w", err)
	}
	if st == nil {
		return nil
	}
	st.IncidentID = in.ID
	res, err := tx.ExecContext(ctx, `INSERT INTO steps(incident_id, doc) VALUES(?, '{}')`, in.ID)
	if err != nil {
		return fmt.Errorf("insert step: %w", err)
	}
	if st.ID, err = res.LastInsertId(); err != nil {
		return err
	}
	sdoc, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE steps SET doc=? WHERE id=?`, sdoc, st.ID)
	return err
}

func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Get implements incident.Store.
func (s *Store) Get(ctx context.Context, id int64) (incident.Incident, error) {
	var doc []byte
	err := s.db.QueryRowContext(ctx, `SELECT doc FROM incidents WHERE id=?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return incident.Incident{}, incident.ErrNotFound
	}
	if err != nil {
		return incident.Incident{}, fmt.Errorf("get incident %d: %w", id, err)
	}
	var in incident.Incident
	if err := json.Unmarshal(doc, &in); err != nil {
		return incident.Incident{}, fmt.Errorf("decode incident %d: %w", id, err)
	}
	return in, nil
}

// Trail implements incident.Store.
func (s *Store) Trail(ctx context.Context, id int64) ([]incident.Step, error) {
	return sqldoc.Query[incident.Step](ctx, s.db, "trail", `SELECT doc FROM steps WHERE incident_id=? ORDER BY id`, id)
}

// List implements incident.Store.
func (s *Store) List(ctx context.Context, f incident.Filter) ([]incident.Incident, error) {
	var where []string
	var args []any
	if !f.Scope.All {
		var or []string
		if len(f.Scope.Orgs) > 0 {
			or = append(or, "org IN ("+marks(len(f.Scope.Orgs))+")")
			for _, o := range f.Scope.Orgs {
				args = append(args, o)
			}
		}
		if len(f.Scope.Sites) > 0 {
			or = append(or, "site IN ("+marks(len(f.Scope.Sites))+")")
			for _, o := range f.Scope.Sites {
				args = append(args, o)
			}
		}
		if len(or) == 0 {
			return nil, nil
		}
		where = append(where, "("+strings.Join(or, " OR ")+")")
	}
	if f.State != "" {
		where = append(where, "state=?")
		args = append(args, f.State)
	}
	if f.Open {
		where = append(where, "state<>?")
		args = append(args, incident.StateClosed)
	}
	if f.Department != "" {
		where = append(where, "department=?")
		args = append(args, f.Department)
	}
	if f.Site != "" {
		where = append(where, "site=?")
		args = append(args, f.Site)
	}
	if f.Type != "" {
		// The type lives in the document only; lists filter on it rarely
		// and within a scope, so no column and index for it.
		where = append(where, "json_extract(doc, '$.type')=?")
		args = append(args, string(f.Type))
	}
	q := "SELECT doc FROM incidents"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, f.ListLimit())
	return s.query(ctx, q, args...)
}

func marks(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

// Due implements incident.Store.
func (s *Store) Due(ctx context.Context, t time.Time) ([]incident.Incident, error) {
	return s.query(ctx, `SELECT doc FROM incidents WHERE state<>? AND overdue=0 AND due_at>0 AND due_at<=? ORDER BY due_at LIMIT 1000`,
		incident.StateClosed, t.UnixNano())
}

// Personal implements incident.Store.
func (s *Store) Personal(ctx context.Context, t time.Time) ([]incident.Incident, error) {
	return s.query(ctx, `SELECT doc FROM incidents WHERE state=? AND personal=1 AND closed_at>0 AND closed_at<? ORDER BY id LIMIT 1000`,
		incident.StateClosed, t.UnixNano())
}

func (s *Store) query(ctx context.Context, q string, args ...any) ([]incident.Incident, error) {
	return sqldoc.Query[incident.Incident](ctx, s.db, "incidents", q, args...)
}
