// Package sqlitedb opens the SQLite files that hold people's data on one
// machine (alerts, accounts, surveys, incidents, report subscriptions),
// all the same way: WAL with full sync (a committed change survives a
// power cut), foreign keys on, a 5 s busy timeout, and one connection.
// SQLite serialises writers anyway; one connection also makes every
// transaction's check-then-write atomic, which the stores rely on.
package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"

	_ "modernc.org/sqlite" // the "sqlite" driver, pure Go
)

// Open opens (creating if need be) the database at path and applies
// schema, which must be idempotent (CREATE ... IF NOT EXISTS). what names
// the store in errors ("alert store").
func Open(ctx context.Context, path, schema, what string) (*sql.DB, error) {
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", what, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s schema %s: %w", what, path, err)
	}
	return db, nil
}
