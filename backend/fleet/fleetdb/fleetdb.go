// Package fleetdb keeps the fleet (organisations, sites, counters, devices,
// operators, services and their config overrides) in an embedded SQLite
// database, so support can change it through the API without a restart, and
// hands the rest of the backend immutable registry.Registry snapshots.
//
// How the fleet file and API changes combine:
//
//   - The fleet file is a set of declarations. ApplyFile applies it when its
//     content differs from the last file applied (its SHA-256 is kept in the
//     database), at start and on every reload (SIGHUP). An unchanged file is
//     not applied again, so API changes survive restarts.
//   - When applied, every entity the file declares takes exactly the file's
//     values, config blocks and counter assignments included. Entities only
//     in the database (added through the API) stay as they are. A retired
//     device the file declares again becomes active again; a device an
//     earlier file declared and this one leaves out is retired (removing a
//     device from the file removes it from service, as before the database).
//     Organisations, sites and counters are never deleted by a file: leave
//     a counter without a device instead.
//   - Export writes the current fleet as a fleet file; saving it as the fleet
//     file makes file and database agree.
//
// Every change runs in one transaction that rebuilds the snapshot with
// registry.Build and commits only if the whole fleet is still valid.
//
// The database is an SQLite file on one machine (Options.Path) or, for
// several backend replicas, a PostgreSQL database they share
// (Options.DSN): the same statements run on both (see dialect.go). On
// PostgreSQL changes are serialised across replicas by an advisory lock,
// and Watch brings a change made by another replica into this one's
// snapshot (see watch.go).
package fleetdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver

	"github.com/semko/semko/internal/pgdb"

	"github.com/semko/semko/fleet/devconfig"
	"github.com/semko/semko/fleet/registry"
)

// Errors of this package. Match them with errors.Is.
var (
	// ErrNotFound: the device, counter, site or organisation does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: an entity with that id exists already (or existed: a
	// retired device id is not reused).
	ErrExists = errors.New("already exists")
	// ErrInvalid wraps a change refused because the fleet would become
	// invalid; the message lists every problem.
	ErrInvalid = errors.New("invalid change")
	// ErrOptions is returned by Open for incomplete Options.
	ErrOptions = errors.New("invalid fleetdb options")
)

// Options configures Open.
type Options struct {
	Path string // SQLite database file; created when missing
	// DSN, instead of Path, is a PostgreSQL connection URL
	// ("postgres://user@host/db"): the fleet shared by backend replicas.
	DSN string
	// PollEvery is how often Watch compares the shared fleet's version
	// with its snapshot's, a backstop for a change notice lost with a
	// connection. Default 30 s. PostgreSQL only.
	PollEvery time.Duration
	// HashSecret hashes a freshly generated device secret (broker.HashSecret);
	// only the hash is stored.
	HashSecret func(secret string) (string, error)
	// OnChange, when set, is called with every new snapshot after its
	// change committed, under the database's write lock (so calls are in
	// commit order). Keep it short.
	OnChange func(*registry.Registry)
	Now      func() time.Time
	Logger   *slog.Logger
}

// DB is an open fleet database.
type DB struct {
	sql  *handle
	opts Options
	log  *slog.Logger

	mu      sync.Mutex // serialises changes, so snapshots follow commits
	current atomic.Pointer[registry.Registry]
	version int64 // fleet_version of current (PostgreSQL only); guarded by mu

	listening atomic.Bool // Watch listens for change notices
}

const schema = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orgs (
	id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', timezone TEXT NOT NULL, config TEXT);
CREATE TABLE IF NOT EXISTS sites (
	id TEXT PRIMARY KEY, org TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',
	timezone TEXT NOT NULL DEFAULT '', responsible TEXT, config TEXT);
CREATE TABLE IF NOT EXISTS counters (
	id TEXT PRIMARY KEY, site TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',
	device TEXT UNIQUE, operator TEXT NOT NULL DEFAULT '', service TEXT NOT NULL DEFAULT '',
	responsible TEXT);
CREATE TABLE IF NOT EXISTS devices (
	id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, model TEXT NOT NULL DEFAULT '',
	serial TEXT NOT NULL DEFAULT '', fw TEXT NOT NULL DEFAULT '', installed TEXT NOT NULL DEFAULT '',
	config TEXT, retired TEXT NOT NULL DEFAULT '', from_file INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS operators (id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', org TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS services (id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS events (
	seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, device TEXT NOT NULL,
	action TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '');
`

// Open opens (creating if needed) the database and builds the first
// snapshot from it.
func Open(ctx context.Context, opts Options) (*DB, error) {
	if (opts.Path == "") == (opts.DSN == "") {
		return nil, fmt.Errorf("%w: exactly one of Path and DSN is required", ErrOptions)
	}
	if opts.HashSecret == nil {
		return nil, fmt.Errorf("%w: HashSecret is required", ErrOptions)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PollEvery <= 0 {
		opts.PollEvery = 30 * time.Second
	}
	if opts.DSN != "" {
		return openPG(ctx, opts)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	sqldb, err := sql.Open("sqlite", "file:"+opts.Path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open fleet db: %w", err)
	}
	// One connection: writes are rare and serialised anyway, and SQLite
	// with one writer never answers SQLITE_BUSY to itself.
	sqldb.SetMaxOpenConns(1)
	if _, err := sqldb.ExecContext(ctx, schema); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("create fleet schema: %w", err)
	}
	db := &DB{sql: &handle{DB: sqldb}, opts: opts, log: opts.Logger}
	f, err := loadFile(ctx, db.sql)
	if err != nil {
		sqldb.Close()
		return nil, err
	}
	reg, err := registry.Build(f)
	if err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("fleet db holds an invalid fleet: %w", err)
	}
	db.current.Store(reg)
	return db, nil
}

// openPG opens the shared fleet on PostgreSQL.
func openPG(ctx context.Context, opts Options) (*DB, error) {
	sqldb, err := pgdb.Open(ctx, opts.DSN, "fleet", pgSchema, "fleet db")
	if err != nil {
		return nil, err
	}
	db := &DB{sql: &handle{DB: sqldb, pg: true}, opts: opts, log: opts.Logger}
	reg, version, err := db.load(ctx)
	if err != nil {
		sqldb.Close()
		return nil, err
	}
	db.current.Store(reg)
	db.version = version
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error { return db.sql.Close() }

// Current returns the snapshot of the fleet as last committed. Never nil.
func (db *DB) Current() *registry.Registry { return db.current.Load() }

// querier is what reads need: *handle or *tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// change runs fn in a transaction, rebuilds the snapshot from what the
// transaction sees and commits only if the fleet is valid.
func (db *DB) change(ctx context.Context, fn func(tx *tx) error) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if tx.pg {
		// One change at a time across replicas, as SQLite's immediate
		// transactions give on one machine: each change validates the
		// whole fleet, so two at once could each be valid and together
		// not. Held until commit or rollback; every statement after it
		// sees every change committed before.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, changeLock); err != nil {
			return fmt.Errorf("fleet change lock: %w", err)
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	f, err := loadFile(ctx, tx)
	if err != nil {
		return err
	}
	reg, err := registry.Build(f)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var version int64
	if tx.pg {
		// The notice is sent at commit, to every replica's Watch.
		if err := tx.QueryRowContext(ctx, `UPDATE fleet_version SET n = n + 1 RETURNING n`).Scan(&version); err != nil {
			return fmt.Errorf("fleet version: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify(?, ?)`, notifyChannel, strconv.FormatInt(version, 10)); err != nil {
			return fmt.Errorf("fleet change notice: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	db.version = version
	db.current.Store(reg)
	if db.opts.OnChange != nil {
		db.opts.OnChange(reg)
	}
	return nil
}

// ApplyFile applies the fleet file at path (see the package comment) when
// its content differs from the last file applied, or always with force. It
// reports whether it applied the file. A missing file declares nothing.
func (db *DB) ApplyFile(ctx context.Context, path string, force bool) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		db.log.Warn("fleet file missing: the fleet is the database's alone", "path", path)
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read fleet file: %w", err)
	}
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	if !force {
		var last string
		err := db.sql.QueryRowContext(ctx, `SELECT value FROM meta WHERE key='file_sha256'`).Scan(&last)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return false, fmt.Errorf("read meta: %w", err)
		}
		if last == digest {
			return false, nil
		}
	}
	f, err := registry.ParseFile(data)
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	err = db.change(ctx, func(tx *tx) error {
		if err := declare(ctx, tx, db.opts.Now(), f); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES('file_sha256', ?)
			ON CONFLICT(key) DO UPDATE SET value=excluded.value`, digest)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("apply fleet file %s: %w", path, err)
	}
	db.log.Info("fleet file applied", "path", path, "devices", len(f.Devices))
	return true, nil
}

// declare upserts every entity of f with exactly f's values, and retires
// the devices an earlier file declared that f leaves out.
func declare(ctx context.Context, tx *tx, now time.Time, f registry.File) error {
	inFile := map[string]bool{}
	for _, d := range f.Devices {
		inFile[d.ID] = true
	}
	var gone []string
	err := eachRow(ctx, tx, `SELECT id FROM devices WHERE from_file=1 AND retired=''`, func(r *sql.Rows) error {
		var id string
		err := r.Scan(&id)
		if !inFile[id] {
			gone = append(gone, id)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("devices from the previous file: %w", err)
	}
	for _, id := range gone {
		if err := retire(ctx, tx, now, id); err != nil {
			return fmt.Errorf("retire %s, left out of the file: %w", id, err)
		}
	}
	for _, d := range f.Devices {
		if _, err := tx.ExecContext(ctx, `INSERT INTO devices(id, secret_hash, model, serial, fw, installed, config, retired, from_file)
			VALUES(?,?,?,?,?,?,?, '', 1)
			ON CONFLICT(id) DO UPDATE SET secret_hash=excluded.secret_hash, model=excluded.model,
			serial=excluded.serial, fw=excluded.fw, installed=excluded.installed, config=excluded.config,
			retired='', from_file=1`,
			d.ID, d.SecretHash, d.Model, d.Serial, d.FW, dateText(d.Installed.Time), overrideText(d.Config)); err != nil {
			return fmt.Errorf("declare device %s: %w", d.ID, err)
		}
	}
	for _, o := range f.Organisations {
		if _, err := tx.ExecContext(ctx, `INSERT INTO orgs(id, name, timezone, config) VALUES(?,?,?,?)
			ON CONFLICT(id) DO UPDATE SET name=excluded.name, timezone=excluded.timezone, config=excluded.config`,
			o.ID, o.Name, o.Timezone, overrideText(o.Config)); err != nil {
			return fmt.Errorf("declare organisation %s: %w", o.ID, err)
		}
		for _, s := range o.Sites {
			if _, err := tx.ExecContext(ctx, `INSERT INTO sites(id, org, name, timezone, responsible, config) VALUES(?,?,?,?,?,?)
				ON CONFLICT(id) DO UPDATE SET org=excluded.org, name=excluded.name, timezone=excluded.timezone,
				responsible=excluded.responsible, config=excluded.config`,
				s.ID, o.ID, s.Name, s.Timezone, jsonText(s.Responsible), overrideText(s.Config)); err != nil {
				return fmt.Errorf("declare site %s: %w", s.ID, err)
			}
			for _, c := range s.Counters {
				if c.Device != "" {
					// The file places the device here: take it off any other counter.
					if _, err := tx.ExecContext(ctx, `UPDATE counters SET device=NULL WHERE device=? AND id<>?`, c.Device, c.ID); err != nil {
						return fmt.Errorf("declare counter %s: %w", c.ID, err)
					}
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO counters(id, site, name, device, operator, service, responsible)
					VALUES(?,?,?,?,?,?,?)
					ON CONFLICT(id) DO UPDATE SET site=excluded.site, name=excluded.name, device=excluded.device,
					operator=excluded.operator, service=excluded.service, responsible=excluded.responsible`,
					c.ID, s.ID, c.Name, nullText(c.Device), c.Operator, c.Service, jsonText(c.Responsible)); err != nil {
					return fmt.Errorf("declare counter %s: %w", c.ID, err)
				}
			}
		}
	}
	for _, o := range f.Operators {
		if _, err := tx.ExecContext(ctx, `INSERT INTO operators(id, name, org) VALUES(?,?,?)
			ON CONFLICT(id) DO UPDATE SET name=excluded.name, org=excluded.org`, o.ID, o.Name, o.Org); err != nil {
			return fmt.Errorf("declare operator %s: %w", o.ID, err)
		}
	}
	for _, s := range f.Services {
		if _, err := tx.ExecContext(ctx, `INSERT INTO services(id, name) VALUES(?,?)
			ON CONFLICT(id) DO UPDATE SET name=excluded.name`, s.ID, s.Name); err != nil {
			return fmt.Errorf("declare service %s: %w", s.ID, err)
		}
	}
	return nil
}

// Export returns the current fleet (retired devices left out) as a fleet
// file.
func (db *DB) Export(ctx context.Context) (registry.File, error) {
	return loadFile(ctx, db.sql)
}

// loadFile reads the whole active fleet, ordered by id.
func loadFile(ctx context.Context, q querier) (registry.File, error) {
	var f registry.File
	err := eachRow(ctx, q, `SELECT id, secret_hash, model, serial, fw, installed, config FROM devices
		WHERE retired='' ORDER BY id`, func(r *sql.Rows) error {
		var d registry.FileDevice
		var installed string
		var cfg sql.NullString
		if err := r.Scan(&d.ID, &d.SecretHash, &d.Model, &d.Serial, &d.FW, &installed, &cfg); err != nil {
			return err
		}
		d.Installed.Time = parseDate(installed)
		var err error
		d.Config, err = parseOverride(cfg)
		f.Devices = append(f.Devices, d)
		return err
	})
	if err != nil {
		return f, fmt.Errorf("load devices: %w", err)
	}
	orgAt := map[string]int{}
	err = eachRow(ctx, q, `SELECT id, name, timezone, config FROM orgs ORDER BY id`, func(r *sql.Rows) error {
		var o registry.FileOrg
		var cfg sql.NullString
		if err := r.Scan(&o.ID, &o.Name, &o.Timezone, &cfg); err != nil {
			return err
		}
		var err error
		o.Config, err = parseOverride(cfg)
		orgAt[o.ID] = len(f.Organisations)
		f.Organisations = append(f.Organisations, o)
		return err
	})
	if err != nil {
		return f, fmt.Errorf("load organisations: %w", err)
	}
	type siteRef struct{ org, site int }
	siteAt := map[string]siteRef{}
	err = eachRow(ctx, q, `SELECT id, org, name, timezone, responsible, config FROM sites ORDER BY id`, func(r *sql.Rows) error {
		var s registry.FileSite
		var org string
		var resp, cfg sql.NullString
		if err := r.Scan(&s.ID, &org, &s.Name, &s.Timezone, &resp, &cfg); err != nil {
			return err
		}
		oi, ok := orgAt[org]
		if !ok {
			return fmt.Errorf("%w: site %s: organisation %q does not exist", ErrInvalid, s.ID, org)
		}
		var err error
		if s.Config, err = parseOverride(cfg); err != nil {
			return err
		}
		if s.Responsible, err = parseResponsible(resp); err != nil {
			return err
		}
		siteAt[s.ID] = siteRef{oi, len(f.Organisations[oi].Sites)}
		f.Organisations[oi].Sites = append(f.Organisations[oi].Sites, s)
		return nil
	})
	if err != nil {
		return f, fmt.Errorf("load sites: %w", err)
	}
	err = eachRow(ctx, q, `SELECT c.id, c.site, c.name, COALESCE(c.device, ''), c.operator, c.service, c.responsible
		FROM counters c ORDER BY c.id`, func(r *sql.Rows) error {
		var c registry.FileCounter
		var site string
		var resp sql.NullString
		if err := r.Scan(&c.ID, &site, &c.Name, &c.Device, &c.Operator, &c.Service, &resp); err != nil {
			return err
		}
		ref, ok := siteAt[site]
		if !ok {
			return fmt.Errorf("%w: counter %s: site %q does not exist", ErrInvalid, c.ID, site)
		}
		var err error
		if c.Responsible, err = parseResponsible(resp); err != nil {
			return err
		}
		s := &f.Organisations[ref.org].Sites[ref.site]
		s.Counters = append(s.Counters, c)
		return nil
	})
	if err != nil {
		return f, fmt.Errorf("load counters: %w", err)
	}
	err = eachRow(ctx, q, `SELECT id, name, org FROM operators ORDER BY id`, func(r *sql.Rows) error {
		var o registry.FileOperator
		err := r.Scan(&o.ID, &o.Name, &o.Org)
		f.Operators = append(f.Operators, o)
		return err
	})
	if err != nil {
		return f, fmt.Errorf("load operators: %w", err)
	}
	err = eachRow(ctx, q, `SELECT id, name FROM services ORDER BY id`, func(r *sql.Rows) error {
		var s registry.FileService
		err := r.Scan(&s.ID, &s.Name)
		f.Services = append(f.Services, s)
		return err
	})
	if err != nil {
		return f, fmt.Errorf("load services: %w", err)
	}
	return f, nil
}

func eachRow(ctx context.Context, q querier, query string, fn func(*sql.Rows) error, args ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

func dateText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.DateOnly)
}

func parseDate(s string) time.Time {
	t, _ := time.Parse(time.DateOnly, s) // written by dateText only
	return t
}

func nullText(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func jsonText(v any) sql.NullString {
	b, err := json.Marshal(v)
	if err != nil || string(b) == "null" {
		return sql.NullString{}
	}
	return sql.NullString{String: string(b), Valid: true}
}

func overrideText(o *devconfig.Override) sql.NullString {
	if o.IsZero() {
		return sql.NullString{}
	}
	return jsonText(o)
}

func parseOverride(s sql.NullString) (*devconfig.Override, error) {
	if !s.Valid {
		return nil, nil
	}
	var o devconfig.Override
	if err := json.Unmarshal([]byte(s.String), &o); err != nil {
		return nil, fmt.Errorf("stored config override: %w", err)
	}
	return &o, nil
}

func parseResponsible(s sql.NullString) (*registry.Responsible, error) {
	if !s.Valid {
		return nil, nil
	}
	var r registry.Responsible
	if err := json.Unmarshal([]byte(s.String), &r); err != nil {
		return nil, fmt.Errorf("stored responsible: %w", err)
	}
	return &r, nil
}

// newSecret returns a random device secret: 26 base32 characters, 128 bits.
func newSecret() string { return rand.Text() }
