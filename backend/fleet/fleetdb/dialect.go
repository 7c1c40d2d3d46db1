package fleetdb

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
)

// The fleet's SQL is written once, with SQLite's "?" placeholders; on
// PostgreSQL handle and tx rewrite them to "$1", "$2", ... before the
// driver sees them. No statement of this package has a "?" inside a
// string literal, so the rewrite needs no SQL parser.

// handle is the database with the dialect's placeholders.
type handle struct {
	*sql.DB
	pg bool
}

// tx is a transaction with the dialect's placeholders.
type tx struct {
	*sql.Tx
	pg bool
}

func (h *handle) BeginTx(ctx context.Context, opts *sql.TxOptions) (*tx, error) {
	t, err := h.DB.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &tx{Tx: t, pg: h.pg}, nil
}

func (h *handle) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return h.DB.ExecContext(ctx, rebind(h.pg, q), args...)
}

func (h *handle) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return h.DB.QueryContext(ctx, rebind(h.pg, q), args...)
}

func (h *handle) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return h.DB.QueryRowContext(ctx, rebind(h.pg, q), args...)
}

func (t *tx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.Tx.ExecContext(ctx, rebind(t.pg, q), args...)
}

func (t *tx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.Tx.QueryContext(ctx, rebind(t.pg, q), args...)
}

func (t *tx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return t.Tx.QueryRowContext(ctx, rebind(t.pg, q), args...)
}

// rebind numbers the "?" placeholders of q for PostgreSQL.
func rebind(pg bool, q string) string {
	if !pg || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// pgSchema is schema in PostgreSQL's words. Text compares byte-wise
// (COLLATE "C"), as in SQLite, so "ORDER BY id" lists the fleet in the
// same order on both whatever the server's locale. fleet_version counts
// committed changes: replicas compare it with the version of their
// snapshot (see watch.go).
var pgSchema = strings.NewReplacer(
	"seq INTEGER PRIMARY KEY AUTOINCREMENT", "seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
	"TEXT", `TEXT COLLATE "C"`,
).Replace(schema) + `
CREATE TABLE IF NOT EXISTS fleet_version (
	one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), n BIGINT NOT NULL);
INSERT INTO fleet_version (one, n) VALUES (TRUE, 0) ON CONFLICT DO NOTHING;
`
