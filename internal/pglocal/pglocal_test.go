package pglocal_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/semko/semko/internal/pgdb"
	"github.com/semko/semko/internal/pglocal"
)

func TestMain(m *testing.M) { pglocal.Main(m) }

// A committed row survives a SIGKILL of the server (crash recovery from the
// WAL) and a clean stop; while the server is down the handle reports errors,
// and it recovers without being reopened.
func TestKillRestartKeepsCommitted(t *testing.T) {
	s := pglocal.StartForTest(t)
	ctx := t.Context()
	db, err := pgdb.Open(ctx, s.CreateDB(t), "test", `CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`, "test store")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	put := func(k string, v int) error {
		_, err := db.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES ($1, $2)`, k, v)
		return err
	}
	get := func(k string) (int, error) {
		var v int
		err := db.QueryRowContext(ctx, `SELECT v FROM kv WHERE k = $1`, k).Scan(&v)
		return v, err
	}
	if err := put("a", 1); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	if err := put("lost", 0); err == nil {
		t.Fatal("insert succeeded while the server was killed")
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// The pool's dead connections fail once each; database/sql retries
	// on a fresh one (driver.ErrBadConn).
	if v, err := get("a"); err != nil || v != 1 {
		t.Fatalf("after kill: a = %d, %v; want 1", v, err)
	}
	if _, err := get("lost"); !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("row written while down: %v", err)
	}
	if err := put("b", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := get("b"); err != nil || v != 2 {
		t.Fatalf("after stop: b = %d, %v; want 2", v, err)
	}
}

// Databases are separate, and the shared server serves several tests.
func TestSharedDatabasesAreSeparate(t *testing.T) {
	ctx := context.Background()
	var dbs []*sql.DB
	for range 2 {
		db, err := pgdb.Open(ctx, pglocal.SharedDB(t), "test", `CREATE TABLE IF NOT EXISTS n (x INTEGER)`, "test store")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		dbs = append(dbs, db)
	}
	if _, err := dbs[0].ExecContext(ctx, `INSERT INTO n VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{1, 0} {
		var n int
		if err := dbs[i].QueryRowContext(ctx, `SELECT count(*) FROM n`).Scan(&n); err != nil || n != want {
			t.Fatalf("database %d: %d rows, %v; want %d", i, n, err, want)
		}
	}
}

// Replicas apply the same schema at once: the schema lock keeps
// CREATE TABLE IF NOT EXISTS from failing on the catalog.
func TestConcurrentMigrate(t *testing.T) {
	dsn := pglocal.SharedDB(t)
	const n = 6
	errs := make(chan error, n)
	for range n {
		go func() {
			db, err := pgdb.Open(t.Context(), dsn, "test", `CREATE TABLE IF NOT EXISTS a (x INTEGER); CREATE INDEX IF NOT EXISTS a_x ON a (x)`, "test store")
			if err == nil {
				db.Close()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// Stores share a database, each in its own namespace: the same table name
// in two of them are two tables.
func TestNamespacesSeparate(t *testing.T) {
	ctx := context.Background()
	dsn := pglocal.SharedDB(t)
	var dbs []*sql.DB
	for _, ns := range []string{"fleet", "alerts"} {
		db, err := pgdb.Open(ctx, dsn, ns, `CREATE TABLE IF NOT EXISTS events (x INTEGER)`, ns+" store")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		dbs = append(dbs, db)
	}
	if _, err := dbs[0].ExecContext(ctx, `INSERT INTO events VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := dbs[1].QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("alerts.events has %d rows, %v; want 0", n, err)
	}
	if _, err := pgdb.Open(ctx, dsn, "Bad-Name", `SELECT 1`, "bad store"); err == nil {
		t.Fatal("a namespace that needs quoting was accepted")
	}
}
