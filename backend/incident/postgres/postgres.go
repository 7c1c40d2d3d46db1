// Package postgres keeps incidents, their trails and their attachments in
// PostgreSQL (through internal/pgdb: pgx's database/sql driver), for a
// cluster of backend replicas sharing one database. Store implements
// incident.Store and passes the same storetest suite as the SQLite store;
// Blobs keeps attachment files, which on one machine are a directory.
//
// Each incident is kept as JSON (json, kept as written) beside the columns
// filters and deadlines use, so a field added to incident.Incident needs
// no migration. Times are unix nanoseconds in bigint, as in the SQLite
// store. The tables live in the "incidents" namespace (pgdb).
package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/semko/semko/internal/pgdb"
	"github.com/semko/semko/internal/sqldoc"

	"github.com/semko/semko/backend/incident"
)

const schema = `
CREATE TABLE IF NOT EXISTS incident_incidents (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org        text NOT NULL,
	site       text NOT NULL,
	department text NOT NULL,
	state      text NOT NULL,
	due_at     bigint NOT NULL,  -- unix ns; 0 when none
	overdue    boolean NOT NULL,
	closed_at  bigint NOT NULL,
	personal   boolean NOT NULL, -- true while a name or contact is kept
	doc        json NOT NULL
);
CREATE INDEX IF NOT EXISTS incident_incidents_org ON incident_incidents(org, id);
CREATE INDEX IF NOT EXISTS incident_incidents_site ON incident_incidents(site, id);
CREATE INDEX IF NOT EXISTS incident_incidents_due ON incident_incidents(due_at) WHERE NOT overdue AND due_at > 0;
CREATE INDEX IF NOT EXISTS incident_incidents_personal ON incident_incidents(closed_at) WHERE personal;
CREATE TABLE IF NOT EXISTS incident_steps (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	incident_id bigint NOT NULL REFERENCES incident_incidents(id),
	doc         json NOT NULL
);
CREATE INDEX IF NOT EXISTS incident_steps_incident ON incident_steps(incident_id, id);
CREATE TABLE IF NOT EXISTS incident_files (
	hash text PRIMARY KEY, -- hex SHA-256 of data
	data bytea NOT NULL
);`

// Store is an incident.Store in PostgreSQL.
type Store struct{ db *sql.DB }

var _ incident.Store = (*Store)(nil)

// Open connects to the database at dsn (a PostgreSQL URL or key=value
// string) and creates the tables it lacks.
func Open(ctx context.Context, dsn string) (*Store, error) {
	db, err := pgdb.Open(ctx, dsn, "incidents", schema, "incident store")
	if err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Close closes the connections.
func (s *Store) Close() error { return s.db.Close() }

func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func personal(in *incident.Incident) bool { return in.CustomerName != "" || in.CustomerContact != "" }

// Create implements incident.Store.
func (s *Store) Create(ctx context.Context, in *incident.Incident, st *incident.Step) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO incident_incidents(org, site, department, state, due_at, overdue, closed_at, personal, doc)
			VALUES($1, $2, $3, $4, $5, $6, $7, $8, '{}') RETURNING id`, in.Org, in.Site, in.Department, in.State, ns(in.DueAt), in.Overdue,
			ns(in.ClosedAt), personal(in)).Scan(&in.ID)
		if err != nil {
			return fmt.Errorf("insert incident: %w", err)
		}
		return write(ctx, tx, in, st)
	})
}

// Save implements incident.Store.
func (s *Store) Save(ctx context.Context, in *incident.Incident, st *incident.Step) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE incident_incidents SET org=$1, site=$2, department=$3, state=$4, due_at=$5, overdue=$6,
			closed_at=$7, personal=$8 WHERE id=$9`,
			in.Org, in.Site, in.Department, in.State, ns(in.DueAt), in.Overdue, ns(in.ClosedAt), personal(in), in.ID)
		if err != nil {
			return fmt.Errorf("update incident: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("update incident: %w", err)
		}
		if n == 0 {
			return incident.ErrNotFound
		}
		return write(ctx, tx, in, st)
	})
}

// write stores the document and appends the step. A step's id is drawn
// before it is written, so its document carries it.
func write(ctx context.Context, tx *sql.Tx, in *incident.Incident, st *incident.Step) error {
	doc, err := json.Marshal(in)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE incident_incidents SET doc=$1 WHERE id=$2`, string(doc), in.ID); err != nil {
		return fmt.Errorf("write incident: %w", err)
	}
	if st == nil {
		return nil
	}
	st.IncidentID = in.ID
	if err := tx.QueryRowContext(ctx, `SELECT nextval(pg_get_serial_sequence('incident_steps', 'id'))`).Scan(&st.ID); err != nil {
		return fmt.Errorf("insert step: %w", err)
	}
	sdoc, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO incident_steps(id, incident_id, doc) OVERRIDING SYSTEM VALUE VALUES($1, $2, $3)`,
		st.ID, in.ID, string(sdoc)); err != nil {
		return fmt.Errorf("insert step: %w", err)
	}
	return nil
}

func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback() //nolint:errcheck // the error that made us roll back is the one to report
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Get implements incident.Store.
func (s *Store) Get(ctx context.Context, id int64) (incident.Incident, error) {
	var doc []byte
	err := s.db.QueryRowContext(ctx, `SELECT doc FROM incident_incidents WHERE id=$1`, id).Scan(&doc)
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
	return sqldoc.Query[incident.Step](ctx, s.db, "trail", `SELECT doc FROM incident_steps WHERE incident_id=$1 ORDER BY id`, id)
}

// List implements incident.Store.
func (s *Store) List(ctx context.Context, f incident.Filter) ([]incident.Incident, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if !f.Scope.All {
		var or []string
		if len(f.Scope.Orgs) > 0 {
			or = append(or, "org = ANY("+arg(f.Scope.Orgs)+")")
		}
		if len(f.Scope.Sites) > 0 {
			or = append(or, "site = ANY("+arg(f.Scope.Sites)+")")
		}
		if len(or) == 0 {
			return nil, nil
		}
		where = append(where, "("+strings.Join(or, " OR ")+")")
	}
	if f.State != "" {
		where = append(where, "state="+arg(string(f.State)))
	}
	if f.Open {
		where = append(where, "state<>"+arg(string(incident.StateClosed)))
	}
	if f.Department != "" {
		where = append(where, "department="+arg(f.Department))
	}
	if f.Site != "" {
		where = append(where, "site="+arg(f.Site))
	}
	if f.Type != "" {
		// The type lives in the document only, as in the SQLite store.
		where = append(where, "doc->>'type'="+arg(string(f.Type)))
	}
	q := "SELECT doc FROM incident_incidents"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT " + arg(f.ListLimit())
	return s.query(ctx, q, args...)
}

// Due implements incident.Store.
func (s *Store) Due(ctx context.Context, t time.Time) ([]incident.Incident, error) {
	return s.query(ctx, `SELECT doc FROM incident_incidents WHERE state<>$1 AND NOT overdue AND due_at>0 AND due_at<=$2
		ORDER BY due_at LIMIT 1000`, string(incident.StateClosed), t.UnixNano())
}

// Personal implements incident.Store.
func (s *Store) Personal(ctx context.Context, t time.Time) ([]incident.Incident, error) {
	return s.query(ctx, `SELECT doc FROM incident_incidents WHERE state=$1 AND personal AND closed_at>0 AND closed_at<$2
		ORDER BY id LIMIT 1000`, string(incident.StateClosed), t.UnixNano())
}

func (s *Store) query(ctx context.Context, q string, args ...any) ([]incident.Incident, error) {
	return sqldoc.Query[incident.Incident](ctx, s.db, "incidents", q, args...)
}
