// Package sqlite keeps accounts, sessions, API tokens and the audit log in
// an SQLite file (modernc.org/sqlite: pure Go, as the alert store). It
// implements account.Store.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/semko/semko/internal/sqlitedb"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/account"
)

const schema = `
CREATE TABLE IF NOT EXISTS accounts (
	name     TEXT PRIMARY KEY,
	role     TEXT NOT NULL,
	scope    TEXT NOT NULL,
	lang     TEXT NOT NULL,
	disabled INTEGER NOT NULL DEFAULT 0,
	created  INTEGER NOT NULL,
	password BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
	id_hash TEXT PRIMARY KEY,
	account TEXT NOT NULL REFERENCES accounts(name),
	created INTEGER NOT NULL,
	expires INTEGER NOT NULL,
	addr    TEXT NOT NULL,
	lang    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_account ON sessions(account);
CREATE TABLE IF NOT EXISTS tokens (
	id        TEXT PRIMARY KEY,
	account   TEXT NOT NULL REFERENCES accounts(name),
	name      TEXT NOT NULL,
	hash      TEXT NOT NULL UNIQUE,
	created   INTEGER NOT NULL,
	last_used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS signin_failures (
	key TEXT NOT NULL,
	at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS signin_failures_key ON signin_failures(key, at);
CREATE INDEX IF NOT EXISTS signin_failures_at ON signin_failures(at);
CREATE TABLE IF NOT EXISTS audit (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	time    INTEGER NOT NULL,
	actor   TEXT NOT NULL,
	token   TEXT NOT NULL,
	addr    TEXT NOT NULL,
	action  TEXT NOT NULL,
	target  TEXT NOT NULL,
	details TEXT NOT NULL
);`

// Store is an account.Store in one SQLite file.
type Store struct{ db *sql.DB }

var _ account.Store = (*Store)(nil)

// Open opens or creates the database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.Open(ctx, path, schema, "account store")
	if err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func scopeJSON(sc access.Scope) string {
	b, _ := json.Marshal(sc) // a struct of strings always encodes
	return string(b)
}

// CreateAccount implements account.Store.
func (s *Store) CreateAccount(ctx context.Context, a account.Account, hash []byte) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO accounts (name, role, scope, lang, disabled, created, password) VALUES (?,?,?,?,?,?,?)`,
		a.Name, a.Role, scopeJSON(a.Scope), a.Lang, a.Disabled, a.Created.UnixNano(), hash)
	if err != nil && strings.Contains(err.Error(), "UNIQUE") {
		return fmt.Errorf("account %q: %w", a.Name, account.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create account %q: %w", a.Name, err)
	}
	return nil
}

type scanner interface{ Scan(...any) error }

func scanAccount(row scanner) (account.Account, []byte, error) {
	var a account.Account
	var scope string
	var created int64
	var hash []byte
	if err := row.Scan(&a.Name, &a.Role, &scope, &a.Lang, &a.Disabled, &created, &hash); err != nil {
		return a, nil, err
	}
	if err := json.Unmarshal([]byte(scope), &a.Scope); err != nil {
		return a, nil, fmt.Errorf("account %q scope: %w", a.Name, err)
	}
	a.Created = time.Unix(0, created).UTC()
	return a, hash, nil
}

// Account implements account.Store.
func (s *Store) Account(ctx context.Context, name string) (account.Account, []byte, error) {
	a, hash, err := scanAccount(s.db.QueryRowContext(ctx,
		`SELECT name, role, scope, lang, disabled, created, password FROM accounts WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return a, nil, fmt.Errorf("account %q: %w", name, account.ErrNotFound)
	}
	if err != nil {
		return a, nil, fmt.Errorf("account %q: %w", name, err)
	}
	return a, hash, nil
}

// Accounts implements account.Store.
func (s *Store) Accounts(ctx context.Context) ([]account.Account, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, role, scope, lang, disabled, created, password FROM accounts ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	defer rows.Close()
	var out []account.Account
	for rows.Next() {
		a, _, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("accounts: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// UpdateAccount implements account.Store.
func (s *Store) UpdateAccount(ctx context.Context, a account.Account) error {
	res, err := s.db.ExecContext(ctx, `UPDATE accounts SET role=?, scope=?, lang=?, disabled=? WHERE name=?`,
		a.Role, scopeJSON(a.Scope), a.Lang, a.Disabled, a.Name)
	return affected(res, err, "update account "+a.Name)
}

// SetPassword implements account.Store.
func (s *Store) SetPassword(ctx context.Context, name string, hash []byte) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE accounts SET password=? WHERE name=?`, hash, name)
	if err := affected(res, err, "set password of "+name); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE account=?`, name); err != nil {
		return fmt.Errorf("end sessions of %q: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func affected(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: %w", what, account.ErrNotFound)
	}
	return nil
}

// CreateSession implements account.Store.
func (s *Store) CreateSession(ctx context.Context, se account.Session) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO sessions (id_hash, account, created, expires, addr, lang) VALUES (?,?,?,?,?,?)`,
		se.IDHash, se.Account, se.Created.UnixNano(), se.Expires.UnixNano(), se.Addr, se.Lang)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// Session implements account.Store.
func (s *Store) Session(ctx context.Context, idHash string, now time.Time) (account.Session, error) {
	var se account.Session
	var created, expires int64
	err := s.db.QueryRowContext(ctx, `SELECT id_hash, account, created, expires, addr, lang FROM sessions WHERE id_hash=? AND expires > ?`,
		idHash, now.UnixNano()).Scan(&se.IDHash, &se.Account, &created, &expires, &se.Addr, &se.Lang)
	if errors.Is(err, sql.ErrNoRows) {
		return se, fmt.Errorf("session: %w", account.ErrNotFound)
	}
	if err != nil {
		return se, fmt.Errorf("session: %w", err)
	}
	se.Created, se.Expires = time.Unix(0, created).UTC(), time.Unix(0, expires).UTC()
	return se, nil
}

// DeleteSession implements account.Store.
func (s *Store) DeleteSession(ctx context.Context, idHash string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE id_hash=?`, idHash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteSessions implements account.Store.
func (s *Store) DeleteSessions(ctx context.Context, name string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE account=?`, name); err != nil {
		return fmt.Errorf("delete sessions of %q: %w", name, err)
	}
	return nil
}

// PurgeSessions implements account.Store.
func (s *Store) PurgeSessions(ctx context.Context, now time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE expires <= ?`, now.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("purge sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// CreateToken implements account.Store.
func (s *Store) CreateToken(ctx context.Context, t account.Token) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO tokens (id, account, name, hash, created) VALUES (?,?,?,?,?)`,
		t.ID, t.Account, t.Name, t.Hash, t.Created.UnixNano())
	if err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	return nil
}

func scanToken(row scanner) (account.Token, error) {
	var t account.Token
	var created, used int64
	if err := row.Scan(&t.ID, &t.Account, &t.Name, &t.Hash, &created, &used); err != nil {
		return t, err
	}
	t.Created = time.Unix(0, created).UTC()
	if used != 0 {
		t.LastUsed = time.Unix(0, used).UTC()
	}
	return t, nil
}

// TokenByHash implements account.Store.
func (s *Store) TokenByHash(ctx context.Context, hash string) (account.Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, `SELECT id, account, name, hash, created, last_used FROM tokens WHERE hash=?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("token: %w", account.ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("token: %w", err)
	}
	return t, nil
}

// Tokens implements account.Store.
func (s *Store) Tokens(ctx context.Context, name string) ([]account.Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, account, name, hash, created, last_used FROM tokens WHERE account=? ORDER BY created, id`, name)
	if err != nil {
		return nil, fmt.Errorf("tokens of %q: %w", name, err)
	}
	defer rows.Close()
	var out []account.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("tokens of %q: %w", name, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// DeleteToken implements account.Store.
func (s *Store) DeleteToken(ctx context.Context, name, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM tokens WHERE account=? AND id=?`, name, id)
	return affected(res, err, "delete token "+id)
}

// TouchToken implements account.Store.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE tokens SET last_used=? WHERE id=?`, at.UnixNano(), id)
	return affected(res, err, "touch token "+id)
}

// AddAudit implements account.Store.
func (s *Store) AddAudit(ctx context.Context, e account.Entry) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO audit (time, actor, token, addr, action, target, details) VALUES (?,?,?,?,?,?,?)`,
		e.Time.UnixNano(), e.Actor, e.Token, e.Addr, e.Action, e.Target, e.Details)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// Audit implements account.Store.
func (s *Store) Audit(ctx context.Context, limit int) ([]account.Entry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, time, actor, token, addr, action, target, details FROM audit ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer rows.Close()
	var out []account.Entry
	for rows.Next() {
		var e account.Entry
		var t int64
		if err := rows.Scan(&e.ID, &t, &e.Actor, &e.Token, &e.Addr, &e.Action, &e.Target, &e.Details); err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		e.Time = time.Unix(0, t).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// AddFailure implements account.Store.
func (s *Store) AddFailure(ctx context.Context, at time.Time, keys ...string) error {
	for _, k := range keys {
		if _, err := s.db.ExecContext(ctx, `INSERT INTO signin_failures (key, at) VALUES (?, ?)`, k, at.UnixNano()); err != nil {
			return fmt.Errorf("add sign-in failure: %w", err)
		}
	}
	return nil
}

// FailuresSince implements account.Store.
func (s *Store) FailuresSince(ctx context.Context, key string, since time.Time) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM signin_failures WHERE key = ? AND at >= ?`, key, since.UnixNano()).Scan(&n); err != nil {
		return 0, fmt.Errorf("count sign-in failures: %w", err)
	}
	return n, nil
}

// ClearFailures implements account.Store.
func (s *Store) ClearFailures(ctx context.Context, key string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM signin_failures WHERE key = ?`, key); err != nil {
		return fmt.Errorf("clear sign-in failures: %w", err)
	}
	return nil
}

// PurgeFailures implements account.Store.
func (s *Store) PurgeFailures(ctx context.Context, before time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM signin_failures WHERE at < ?`, before.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("purge sign-in failures: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
