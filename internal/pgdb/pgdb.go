// Package pgdb opens the PostgreSQL database that holds the cluster's shared
// state (fleet, alerts, accounts, surveys, incidents, report subscriptions),
// all the same way, as internal/sqlitedb does for one machine's files.
//
// The stores speak database/sql, so the PostgreSQL implementations keep the
// SQLite ones' shape; pgx's stdlib adapter is the driver. Code that needs
// PostgreSQL-only features (LISTEN/NOTIFY) gets a pgx connection from the
// same *sql.DB with Conn.Raw.
package pgdb

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// schemaLock is the advisory lock key every store holds while it applies
// its schema: replicas starting together would otherwise race on CREATE
// TABLE IF NOT EXISTS, which PostgreSQL does not make atomic (two creators
// can both pass the check and one fails on the catalog's unique index).
const schemaLock = 0x53656d6b6f // "Semko"

// Open connects to dsn (a postgres:// URL or key=value string) with the
// PostgreSQL schema (namespace) ns first on the search path, creates ns if
// missing and applies schema there, which must be idempotent (CREATE ...
// IF NOT EXISTS) and may hold several statements. what names the store in
// errors ("alert store").
//
// Each store has its own namespace ("fleet", "alerts", "accounts", ...):
// they share one database and their SQL keeps the SQLite stores' unqualified
// table names (two of them have an "events" table).
func Open(ctx context.Context, dsn, ns, schema, what string) (*sql.DB, error) {
	if !validNamespace(ns) {
		return nil, fmt.Errorf("open %s: namespace %q: want lower-case letters, digits and _", what, ns)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", what, err)
	}
	cfg.RuntimeParams["search_path"] = ns
	// Ping every connection as it leaves the pool (one loopback round trip,
	// ~0.1 ms): after PostgreSQL restarts, each pooled connection holds the
	// server's "terminating connection" message, and pgx's default pings
	// only connections idle for over a second, so the first statement on
	// each would fail. A failed ping makes database/sql take a fresh
	// connection instead. The stores are not on a hot path.
	db := stdlib.OpenDB(*cfg, stdlib.OptionShouldPing(func(context.Context, stdlib.ShouldPingParams) bool { return true }))
	// A handful per store and replica: a server's max_connections (100 by
	// default) is shared by every store of every replica.
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := Migrate(ctx, db, "CREATE SCHEMA IF NOT EXISTS "+ns+";\n"+schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return db, nil
}

func validNamespace(ns string) bool {
	if ns == "" || len(ns) > 63 || ns[0] < 'a' || ns[0] > 'z' {
		return false
	}
	for _, r := range ns {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}

// Migrate applies schema on one connection while holding the schema lock.
func Migrate(ctx context.Context, db *sql.DB, schema string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, schemaLock); err != nil {
		return fmt.Errorf("schema lock: %w", err)
	}
	// Unlocked on the same connection; if that fails the connection is
	// broken and the server drops the lock with it.
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, schemaLock) //nolint:errcheck
	if _, err := conn.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	return nil
}
