// Package sqlite keeps survey state in an SQLite file (modernc.org/sqlite:
// pure Go, no cgo). It implements survey.Store.
//
// Addresses are never stored: the send and unsubscribe tables hold keyed
// hashes. A follow-up holds the customer's address only when the customer
// agreed to be contacted, until Forget erases it.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/semko/semko/internal/sqlitedb"

	"github.com/semko/semko/backend/survey"
)

const schema = `
CREATE TABLE IF NOT EXISTS sent (
	org       TEXT NOT NULL,
	addr_hash TEXT NOT NULL,
	at        INTEGER NOT NULL,
	PRIMARY KEY (org, addr_hash)
);
CREATE INDEX IF NOT EXISTS sent_at ON sent(at);
CREATE TABLE IF NOT EXISTS unsubscribed (
	addr_hash TEXT PRIMARY KEY,
	at        INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS invitations (
	id       TEXT PRIMARY KEY,
	org      TEXT NOT NULL,
	site     TEXT NOT NULL,
	counter  TEXT NOT NULL,
	device   TEXT NOT NULL,
	operator TEXT NOT NULL,
	service  TEXT NOT NULL,
	channel  TEXT NOT NULL,
	lang     TEXT NOT NULL,
	created  INTEGER NOT NULL,
	expires  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
	seq            INTEGER PRIMARY KEY AUTOINCREMENT,
	id             TEXT NOT NULL UNIQUE,
	invitation     TEXT NOT NULL,
	org            TEXT NOT NULL,
	site           TEXT NOT NULL,
	counter        TEXT NOT NULL,
	device         TEXT NOT NULL,
	operator       TEXT NOT NULL,
	service        TEXT NOT NULL,
	channel        TEXT NOT NULL,
	lang           TEXT NOT NULL,
	score          INTEGER NOT NULL,
	at             INTEGER NOT NULL,
	voter          TEXT NOT NULL,
	reasons        TEXT NOT NULL DEFAULT '',
	comment        TEXT NOT NULL DEFAULT '',
	reasons_at     INTEGER NOT NULL DEFAULT 0,
	vote_spooled   INTEGER NOT NULL DEFAULT 0,
	detail_spooled INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS answers_voter ON answers(voter, counter, at);
CREATE INDEX IF NOT EXISTS answers_unspooled ON answers(vote_spooled, detail_spooled);
CREATE TABLE IF NOT EXISTS followups (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	answer      TEXT NOT NULL UNIQUE,
	org         TEXT NOT NULL,
	site        TEXT NOT NULL,
	counter     TEXT NOT NULL,
	operator    TEXT NOT NULL,
	service     TEXT NOT NULL,
	channel     TEXT NOT NULL,
	score       INTEGER NOT NULL,
	reasons     TEXT NOT NULL,
	comment     TEXT NOT NULL,
	contact     TEXT NOT NULL,
	lang        TEXT NOT NULL,
	responsible TEXT NOT NULL,
	opened      INTEGER NOT NULL,
	due         INTEGER NOT NULL,
	state       TEXT NOT NULL,
	closed      INTEGER NOT NULL DEFAULT 0,
	closed_by   TEXT NOT NULL DEFAULT '',
	outcome     TEXT NOT NULL DEFAULT '',
	notified    INTEGER NOT NULL DEFAULT 0,
	escalated   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS followups_state ON followups(state, due);`

// Store is a survey.Store in one SQLite file.
type Store struct {
	db *sql.DB
}

var _ survey.Store = (*Store)(nil)

// Open opens or creates the database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.Open(ctx, path, schema, "survey store")
	if err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// ReserveSend implements survey.Store.
func (s *Store) ReserveSend(ctx context.Context, org, hash string, at, since time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("reserve send: %w", err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM unsubscribed WHERE addr_hash = ?`, hash).Scan(&n); err != nil {
		return fmt.Errorf("reserve send: %w", err)
	}
	if n > 0 {
		return survey.ErrUnsubscribed
	}
	var last int64
	switch err := tx.QueryRowContext(ctx, `SELECT at FROM sent WHERE org = ? AND addr_hash = ?`, org, hash).Scan(&last); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("reserve send: %w", err)
	case last > ms(since):
		return survey.ErrRecent
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sent(org, addr_hash, at) VALUES(?, ?, ?)
		ON CONFLICT(org, addr_hash) DO UPDATE SET at = excluded.at`, org, hash, ms(at)); err != nil {
		return fmt.Errorf("reserve send: %w", err)
	}
	return tx.Commit()
}

// ReleaseSend implements survey.Store.
func (s *Store) ReleaseSend(ctx context.Context, org, hash string, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sent WHERE org = ? AND addr_hash = ? AND at = ?`, org, hash, ms(at)); err != nil {
		return fmt.Errorf("release send: %w", err)
	}
	return nil
}

// Unsubscribe implements survey.Store.
func (s *Store) Unsubscribe(ctx context.Context, hash string, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO unsubscribed(addr_hash, at) VALUES(?, ?) ON CONFLICT DO NOTHING`, hash, ms(at)); err != nil {
		return fmt.Errorf("unsubscribe: %w", err)
	}
	return nil
}

// SaveInvitation implements survey.Store.
func (s *Store) SaveInvitation(ctx context.Context, inv survey.Invitation) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO invitations(id, org, site, counter, device, operator, service, channel, lang, created, expires)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		inv.ID, inv.Org, inv.Site, inv.Counter, inv.Device, inv.Operator, inv.Service, string(inv.Channel), inv.Lang, ms(inv.Created), ms(inv.Expires))
	if err != nil {
		return fmt.Errorf("save invitation: %w", err)
	}
	return nil
}

// Invitation implements survey.Store.
func (s *Store) Invitation(ctx context.Context, id string) (survey.Invitation, error) {
	var inv survey.Invitation
	var ch string
	var created, expires int64
	err := s.db.QueryRowContext(ctx, `SELECT id, org, site, counter, device, operator, service, channel, lang, created, expires
		FROM invitations WHERE id = ?`, id).Scan(&inv.ID, &inv.Org, &inv.Site, &inv.Counter, &inv.Device, &inv.Operator, &inv.Service, &ch, &inv.Lang, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return inv, survey.ErrNotFound
	}
	if err != nil {
		return inv, fmt.Errorf("invitation: %w", err)
	}
	inv.Channel, inv.Created, inv.Expires = survey.Channel(ch), fromMS(created), fromMS(expires)
	return inv, nil
}

const answerCols = `seq, id, invitation, org, site, counter, device, operator, service, channel, lang, score, at, voter,
	reasons, comment, reasons_at, vote_spooled, detail_spooled`

type scanner interface{ Scan(...any) error }

func scanAnswer(r scanner) (survey.Answer, error) {
	var a survey.Answer
	var ch, reasons string
	var at, rat int64
	err := r.Scan(&a.Seq, &a.ID, &a.Invitation, &a.Org, &a.Site, &a.Counter, &a.Device, &a.Operator, &a.Service, &ch, &a.Lang,
		&a.Score, &at, &a.Voter, &reasons, &a.Comment, &rat, &a.VoteSpooled, &a.DetailSpooled)
	a.Channel, a.Time, a.ReasonsAt, a.Reasons = survey.Channel(ch), fromMS(at), fromMS(rat), split(reasons)
	return a, err
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// RecordAnswer implements survey.Store.
func (s *Store) RecordAnswer(ctx context.Context, a survey.Answer, voterSince time.Time, f *survey.FollowUp) (survey.Answer, bool, error) {
	if err := a.Validate(); err != nil {
		return a, false, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return a, false, fmt.Errorf("record answer: %w", err)
	}
	defer tx.Rollback()
	old, err := scanAnswer(tx.QueryRowContext(ctx, `SELECT `+answerCols+` FROM answers WHERE id = ?`, a.ID))
	switch {
	case err == nil:
		return old, false, nil
	case !errors.Is(err, sql.ErrNoRows):
		return a, false, fmt.Errorf("record answer: %w", err)
	}
	if a.Voter != "" {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM answers WHERE voter = ? AND counter = ? AND at > ?`,
			a.Voter, a.Counter, ms(voterSince)).Scan(&n); err != nil {
			return a, false, fmt.Errorf("record answer: %w", err)
		}
		if n > 0 {
			return a, false, survey.ErrReplayed
		}
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO answers(id, invitation, org, site, counter, device, operator, service, channel, lang, score, at, voter)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.Invitation, a.Org, a.Site, a.Counter, a.Device, a.Operator, a.Service, string(a.Channel), a.Lang, a.Score, ms(a.Time), a.Voter)
	if err != nil {
		return a, false, fmt.Errorf("record answer: %w", err)
	}
	if a.Seq, err = res.LastInsertId(); err != nil {
		return a, false, fmt.Errorf("record answer: %w", err)
	}
	if f != nil {
		f.Answer, f.State = a.ID, survey.FollowUpOpen
		res, err := tx.ExecContext(ctx, `INSERT INTO followups(answer, org, site, counter, operator, service, channel, score, reasons, comment, contact, lang, responsible, opened, due, state)
			VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			f.Answer, f.Org, f.Site, f.Counter, f.Operator, f.Service, string(f.Channel), f.Score, strings.Join(f.Reasons, ","), f.Comment,
			f.Contact, f.Lang, f.Responsible, ms(f.Opened), ms(f.Due), string(f.State))
		if err != nil {
			return a, false, fmt.Errorf("record answer: follow-up: %w", err)
		}
		if f.ID, err = res.LastInsertId(); err != nil {
			return a, false, fmt.Errorf("record answer: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return a, false, fmt.Errorf("record answer: %w", err)
	}
	a.Time = fromMS(ms(a.Time))
	return a, true, nil
}

// Answer implements survey.Store.
func (s *Store) Answer(ctx context.Context, id string) (survey.Answer, error) {
	a, err := scanAnswer(s.db.QueryRowContext(ctx, `SELECT `+answerCols+` FROM answers WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, survey.ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("answer: %w", err)
	}
	return a, nil
}

// SetReasons implements survey.Store.
func (s *Store) SetReasons(ctx context.Context, id string, reasons []string, comment, contact string, at time.Time) (survey.Answer, bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return survey.Answer{}, false, fmt.Errorf("set reasons: %w", err)
	}
	defer tx.Rollback()
	a, err := scanAnswer(tx.QueryRowContext(ctx, `SELECT `+answerCols+` FROM answers WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, false, survey.ErrNotFound
	}
	if err != nil {
		return a, false, fmt.Errorf("set reasons: %w", err)
	}
	if !a.ReasonsAt.IsZero() {
		return a, false, nil
	}
	joined := strings.Join(reasons, ",")
	if _, err := tx.ExecContext(ctx, `UPDATE answers SET reasons = ?, comment = ?, reasons_at = ? WHERE id = ?`, joined, comment, ms(at), id); err != nil {
		return a, false, fmt.Errorf("set reasons: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE followups SET reasons = ?, comment = ?, contact = CASE WHEN ? <> '' THEN ? ELSE contact END
		WHERE answer = ? AND state = ?`, joined, comment, contact, contact, id, string(survey.FollowUpOpen)); err != nil {
		return a, false, fmt.Errorf("set reasons: follow-up: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return a, false, fmt.Errorf("set reasons: %w", err)
	}
	a.Reasons, a.Comment, a.ReasonsAt = split(joined), comment, fromMS(ms(at))
	return a, true, nil
}

// MarkSpooled implements survey.Store.
func (s *Store) MarkSpooled(ctx context.Context, id string, vote, detail bool) error {
	q := `UPDATE answers SET vote_spooled = vote_spooled | ?, detail_spooled = detail_spooled | ? WHERE id = ?`
	if _, err := s.db.ExecContext(ctx, q, vote, detail, id); err != nil {
		return fmt.Errorf("mark spooled: %w", err)
	}
	return nil
}

// Unspooled implements survey.Store.
func (s *Store) Unspooled(ctx context.Context, limit int) ([]survey.Answer, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+answerCols+` FROM answers
		WHERE vote_spooled = 0 OR (reasons_at > 0 AND detail_spooled = 0) ORDER BY seq LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("unspooled: %w", err)
	}
	defer rows.Close()
	var out []survey.Answer
	for rows.Next() {
		a, err := scanAnswer(rows)
		if err != nil {
			return nil, fmt.Errorf("unspooled: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

const followCols = `id, answer, org, site, counter, operator, service, channel, score, reasons, comment, contact, lang, responsible,
	opened, due, state, closed, closed_by, outcome, notified, escalated`

func scanFollowUp(r scanner) (survey.FollowUp, error) {
	var f survey.FollowUp
	var ch, reasons, state string
	var opened, due, closed, notified, escalated int64
	err := r.Scan(&f.ID, &f.Answer, &f.Org, &f.Site, &f.Counter, &f.Operator, &f.Service, &ch, &f.Score, &reasons, &f.Comment, &f.Contact,
		&f.Lang, &f.Responsible, &opened, &due, &state, &closed, &f.ClosedBy, &f.Outcome, &notified, &escalated)
	f.Channel, f.Reasons, f.State = survey.Channel(ch), split(reasons), survey.FollowUpState(state)
	f.Opened, f.Due, f.Closed, f.Notified, f.Escalated = fromMS(opened), fromMS(due), fromMS(closed), fromMS(notified), fromMS(escalated)
	return f, err
}

// FollowUps implements survey.Store.
func (s *Store) FollowUps(ctx context.Context, flt survey.FollowUpFilter) ([]survey.FollowUp, error) {
	q := `SELECT ` + followCols + ` FROM followups WHERE 1=1`
	var args []any
	if flt.State != "" {
		q += ` AND state = ?`
		args = append(args, string(flt.State))
	}
	if flt.Org != "" {
		q += ` AND org = ?`
		args = append(args, flt.Org)
	}
	if flt.Site != "" {
		q += ` AND site = ?`
		args = append(args, flt.Site)
	}
	if !flt.Overdue.IsZero() {
		q += ` AND state = ? AND due < ? AND escalated = 0`
		args = append(args, string(survey.FollowUpOpen), ms(flt.Overdue))
	}
	limit := flt.Limit
	if limit <= 0 {
		limit = 500
	}
	q += ` ORDER BY due, id LIMIT ?`
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("follow-ups: %w", err)
	}
	defer rows.Close()
	var out []survey.FollowUp
	for rows.Next() {
		f, err := scanFollowUp(rows)
		if err != nil {
			return nil, fmt.Errorf("follow-ups: %w", err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// FollowUp implements survey.Store.
func (s *Store) FollowUp(ctx context.Context, id int64) (survey.FollowUp, error) {
	f, err := scanFollowUp(s.db.QueryRowContext(ctx, `SELECT `+followCols+` FROM followups WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return f, survey.ErrNotFound
	}
	if err != nil {
		return f, fmt.Errorf("follow-up: %w", err)
	}
	return f, nil
}

// CloseFollowUp implements survey.Store.
func (s *Store) CloseFollowUp(ctx context.Context, id int64, by, outcome string, at time.Time) (survey.FollowUp, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE followups SET state = ?, closed = ?, closed_by = ?, outcome = ? WHERE id = ? AND state = ?`,
		string(survey.FollowUpClosed), ms(at), by, outcome, id, string(survey.FollowUpOpen))
	if err != nil {
		return survey.FollowUp{}, fmt.Errorf("close follow-up: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return survey.FollowUp{}, fmt.Errorf("close follow-up: %w", err)
	}
	f, err := s.FollowUp(ctx, id)
	if err != nil {
		return f, err
	}
	if n == 0 {
		return f, survey.ErrClosed
	}
	return f, nil
}

func (s *Store) mark(ctx context.Context, col string, id int64, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE followups SET `+col+` = ? WHERE id = ?`, ms(at), id)
	if err != nil {
		return fmt.Errorf("follow-up %s: %w", col, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return survey.ErrNotFound
	}
	return nil
}

// MarkNotified implements survey.Store.
func (s *Store) MarkNotified(ctx context.Context, id int64, at time.Time) error {
	return s.mark(ctx, "notified", id, at)
}

// MarkEscalated implements survey.Store.
func (s *Store) MarkEscalated(ctx context.Context, id int64, at time.Time) error {
	return s.mark(ctx, "escalated", id, at)
}

// Forget implements survey.Store.
func (s *Store) Forget(ctx context.Context, sentBefore, closedBefore time.Time) (int, error) {
	r1, err := s.db.ExecContext(ctx, `DELETE FROM sent WHERE at < ?`, ms(sentBefore))
	if err != nil {
		return 0, fmt.Errorf("forget: %w", err)
	}
	r2, err := s.db.ExecContext(ctx, `UPDATE followups SET contact = '' WHERE state = ? AND closed < ? AND contact <> ''`,
		string(survey.FollowUpClosed), ms(closedBefore))
	if err != nil {
		return 0, fmt.Errorf("forget: %w", err)
	}
	n1, _ := r1.RowsAffected()
	n2, _ := r2.RowsAffected()
	return int(n1 + n2), nil
}
