package fleetdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/semko/semko/fleet/registry"
)

const (
	// notifyChannel carries the new fleet_version at every commit.
	notifyChannel = "semko_fleet"
	// changeLock is the advisory lock key that serialises fleet changes.
	changeLock = 0x666c656574 // "fleet"
	// Reconnect backoff of Watch's listening connection.
	minBackoff = 200 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// load reads the fleet and its version in one snapshot of the database.
func (db *DB) load(ctx context.Context) (*registry.Registry, int64, error) {
	t, err := db.sql.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, 0, fmt.Errorf("load fleet: %w", err)
	}
	defer t.Rollback()
	var version int64
	if err := t.QueryRowContext(ctx, `SELECT n FROM fleet_version`).Scan(&version); err != nil {
		return nil, 0, fmt.Errorf("load fleet version: %w", err)
	}
	f, err := loadFile(ctx, t)
	if err != nil {
		return nil, 0, err
	}
	reg, err := registry.Build(f)
	if err != nil {
		return nil, 0, fmt.Errorf("fleet db holds an invalid fleet: %w", err)
	}
	return reg, version, nil
}

// Version is the shared fleet's change count the current snapshot
// reflects (0 on SQLite).
func (db *DB) Version() int64 {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.version
}

// Listening reports whether Watch is connected and listening for change
// notices (it has then also loaded every change committed before).
func (db *DB) Listening() bool { return db.listening.Load() }

// Watch keeps the snapshot up to date with changes other replicas commit
// to the shared (PostgreSQL) fleet, until ctx ends: it LISTENs for the
// notice every change sends at commit and reloads the fleet when the
// notice's version is newer than its snapshot's, calling OnChange as a
// local change does. A notice can be lost with the connection, so Watch
// also reloads after every (re)connection and compares versions every
// PollEvery. On SQLite (one process) there is nothing to watch: it waits
// for ctx. It returns nil when ctx ends; connection failures are logged
// and retried, never returned.
func (db *DB) Watch(ctx context.Context) error {
	if !db.sql.pg {
		<-ctx.Done()
		return nil
	}
	backoff := minBackoff
	for {
		err := db.listen(ctx, func() { backoff = minBackoff })
		if ctx.Err() != nil {
			return nil
		}
		db.log.Warn("fleet change notices interrupted, reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listen serves one listening connection until it fails or ctx ends.
// listening is called once the LISTEN is in place.
func (db *DB) listen(ctx context.Context, listening func()) error {
	conn, err := pgx.Connect(ctx, db.opts.DSN)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	listening()
	// Changes committed while nobody listened.
	if err := db.refresh(ctx, -1); err != nil {
		db.log.Error("fleet reload", "err", err)
	}
	db.listening.Store(true)
	defer db.listening.Store(false)
	for {
		wait, cancel := context.WithTimeout(ctx, db.opts.PollEvery)
		n, err := conn.WaitForNotification(wait)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, context.DeadlineExceeded):
			// The backstop: no notice for a while; ask for the version.
			if err := db.refresh(ctx, -1); err != nil {
				db.log.Error("fleet reload", "err", err)
			}
			continue
		case err != nil:
			return fmt.Errorf("wait for notice: %w", err)
		}
		v, err := strconv.ParseInt(n.Payload, 10, 64)
		if err != nil {
			v = -1 // not ours to parse: compare with the database's
		}
		if err := db.refresh(ctx, v); err != nil {
			db.log.Error("fleet reload", "err", err)
		}
	}
}

// refresh reloads the fleet if its version (announced, or read when
// announced is negative) is newer than the snapshot's, and publishes it.
func (db *DB) refresh(ctx context.Context, announced int64) error {
	if announced < 0 {
		if err := db.sql.QueryRowContext(ctx, `SELECT n FROM fleet_version`).Scan(&announced); err != nil {
			return fmt.Errorf("fleet version: %w", err)
		}
	}
	if announced <= db.Version() {
		return nil // our own change, or one we have already loaded
	}
	reg, version, err := db.load(ctx)
	if err != nil {
		return err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if version <= db.version {
		return nil // a change of ours committed meanwhile and is newer
	}
	db.version = version
	db.current.Store(reg)
	db.log.Info("fleet changed by another replica", "version", version, "devices", reg.Len())
	if db.opts.OnChange != nil {
		db.opts.OnChange(reg)
	}
	return nil
}
