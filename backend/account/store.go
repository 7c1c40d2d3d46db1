// Package account keeps the people who use the console and the API:
// accounts with a role and a scope, password sign-in throttled per account
// and per address, sessions kept in a database table (so replicas can
// share them), personal API tokens, and the audit log of every change a
// person or token makes. Secrets (session ids, tokens) are stored only as
// SHA-256 hashes; passwords as bcrypt hashes.
package account

import (
	"context"
	"errors"
	"time"

	"github.com/semko/semko/backend/access"
)

// Errors a Store returns.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// Account is a person (or an integrator's system) using Semko.
type Account struct {
	Name     string       `json:"name"`
	Role     access.Role  `json:"role"`
	Scope    access.Scope `json:"scope"`
	Lang     string       `json:"lang"` // "en", "bg", "ru"; empty: the browser's at sign-in
	Disabled bool         `json:"disabled,omitempty"`
	Created  time.Time    `json:"created"`
}

// Principal is the account as an access.Principal.
func (a Account) Principal() access.Principal {
	return access.Principal{Account: a.Name, Role: a.Role, Scope: a.Scope, Lang: a.Lang}
}

// Session is a signed-in browser. IDHash is the SHA-256 of the cookie's
// value; the value itself is never stored.
type Session struct {
	IDHash  string
	Account string
	Created time.Time
	Expires time.Time
	Addr    string // the address it signed in from
	Lang    string // the language chosen at sign-in
}

// Token is a personal API token. Hash is the SHA-256 of the secret, shown
// once at creation.
type Token struct {
	ID       string    `json:"id"`
	Account  string    `json:"account"`
	Name     string    `json:"name"`
	Hash     string    `json:"-"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

// Entry is one line of the audit log: who changed what, when, from where.
type Entry struct {
	ID      int64     `json:"id"`
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`           // account name, "bootstrap" for SEMKO_API_TOKEN
	Token   string    `json:"token,omitempty"` // the token's id when done with one
	Addr    string    `json:"addr"`
	Action  string    `json:"action"` // e.g. "account.create", "alert.ack"
	Target  string    `json:"target"` // what it was done to
	Details string    `json:"details,omitempty"`
}

// Store keeps accounts, sessions, tokens and the audit log. Every method
// is safe for concurrent use. The sqlite package implements it; the
// storetest package checks any implementation.
type Store interface {
	CreateAccount(ctx context.Context, a Account, passwordHash []byte) error
	// Account returns the account and its password hash.
	Account(ctx context.Context, name string) (Account, []byte, error)
	Accounts(ctx context.Context) ([]Account, error)
	// UpdateAccount changes role, scope, language and disabled.
	UpdateAccount(ctx context.Context, a Account) error
	// SetPassword replaces the hash and ends every session of the
	// account, in one transaction.
	SetPassword(ctx context.Context, name string, passwordHash []byte) error

	CreateSession(ctx context.Context, s Session) error
	// Session returns an unexpired session by the hash of its id.
	Session(ctx context.Context, idHash string, now time.Time) (Session, error)
	DeleteSession(ctx context.Context, idHash string) error
	DeleteSessions(ctx context.Context, account string) error
	// PurgeSessions deletes the sessions expired before now.
	PurgeSessions(ctx context.Context, now time.Time) (int, error)

	CreateToken(ctx context.Context, t Token) error
	TokenByHash(ctx context.Context, hash string) (Token, error)
	Tokens(ctx context.Context, account string) ([]Token, error)
	DeleteToken(ctx context.Context, account, id string) error
	TouchToken(ctx context.Context, id string, at time.Time) error

	// AddFailure records a failed sign-in at at under each key
	// ("acct:<name>", "addr:<ip>"); FailuresSince counts a key's failures
	// at or after since; ClearFailures forgets a key's; PurgeFailures
	// deletes those before before. In the store, not in a process's
	// memory, so replicas sharing it throttle together.
	AddFailure(ctx context.Context, at time.Time, keys ...string) error
	FailuresSince(ctx context.Context, key string, since time.Time) (int, error)
	ClearFailures(ctx context.Context, key string) error
	PurgeFailures(ctx context.Context, before time.Time) (int, error)

	AddAudit(ctx context.Context, e Entry) error
	// Audit returns the newest entries first, at most limit.
	Audit(ctx context.Context, limit int) ([]Entry, error)
}
