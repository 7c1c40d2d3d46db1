// Package postgres keeps survey state in PostgreSQL (through internal/pgdb:
// pgx's database/sql driver), for a cluster of backend replicas sharing one database. It implements
// survey.Store and passes the same storetest suite as the SQLite store.
//
// The SQLite store gets its atomicity from a single connection; here
// several replicas write at once, so every check-then-write is one
// statement or holds a lock: the send rule is one upsert whose condition
// PostgreSQL re-checks on the locked row, a repeated answer id meets the
// unique index, a voter's answers are serialised by an advisory lock, and
// reasons are set under the answer's row lock.
//
// Times are unix milliseconds in bigint, as in the SQLite store, so both
// round the same way. The tables live in the "survey" namespace (pgdb).
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/semko/semko/internal/pgdb"

	"github.com/semko/semko/backend/survey"
)

const schema = `
CREATE TABLE IF NOT EXISTS survey_sent (
	org       text NOT NULL,
	addr_hash text NOT NULL,
	at        bigint NOT NULL,
	PRIMARY KEY (org, addr_hash)
);
CREATE INDEX IF NOT EXISTS survey_sent_at ON survey_sent(at);
CREATE TABLE IF NOT EXISTS survey_unsubscribed (
	addr_hash text PRIMARY KEY,
	at        bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS survey_invitations (
	id       text PRIMARY KEY,
	org      text NOT NULL,
	site     text NOT NULL,
	counter  text NOT NULL,
	device   text NOT NULL,
	operator text NOT NULL,
	service  text NOT NULL,
	channel  text NOT NULL,
	lang     text NOT NULL,
	created  bigint NOT NULL,
	expires  bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS survey_answers (
	seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id             text NOT NULL UNIQUE,
	invitation     text NOT NULL,
	org            text NOT NULL,
	site           text NOT NULL,
	counter        text NOT NULL,
	device         text NOT NULL,
	operator       text NOT NULL,
	service        text NOT NULL,
	channel        text NOT NULL,
	lang           text NOT NULL,
	score          integer NOT NULL,
	at             bigint NOT NULL,
	voter          text NOT NULL,
	reasons        text NOT NULL DEFAULT '',
	comment        text NOT NULL DEFAULT '',
	reasons_at     bigint NOT NULL DEFAULT 0,
	vote_spooled   boolean NOT NULL DEFAULT false,
	detail_spooled boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS survey_answers_voter ON survey_answers(voter, counter, at);
CREATE INDEX IF NOT EXISTS survey_answers_unspooled ON survey_answers(seq)
	WHERE NOT vote_spooled OR (reasons_at > 0 AND NOT detail_spooled);
CREATE TABLE IF NOT EXISTS survey_followups (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	answer      text NOT NULL UNIQUE REFERENCES survey_answers(id),
	org         text NOT NULL,
	site        text NOT NULL,
	counter     text NOT NULL,
	operator    text NOT NULL,
	service     text NOT NULL,
	channel     text NOT NULL,
	score       integer NOT NULL,
	reasons     text NOT NULL,
	comment     text NOT NULL,
	contact     text NOT NULL,
	lang        text NOT NULL,
	responsible text NOT NULL,
	opened      bigint NOT NULL,
	due         bigint NOT NULL,
	state       text NOT NULL,
	closed      bigint NOT NULL DEFAULT 0,
	closed_by   text NOT NULL DEFAULT '',
	outcome     text NOT NULL DEFAULT '',
	notified    bigint NOT NULL DEFAULT 0,
	escalated   bigint NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS survey_followups_state ON survey_followups(state, due);`

// Store is a survey.Store in PostgreSQL.
type Store struct {
	db *sql.DB
}

var _ survey.Store = (*Store)(nil)

// Open connects to the database at dsn (a PostgreSQL URL or key=value
// string) and creates the tables it lacks.
func Open(ctx context.Context, dsn string) (*Store, error) {
	db, err := pgdb.Open(ctx, dsn, "survey", schema, "survey store")
	if err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Close closes the connections.
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

// split reads the reasons column: categories joined by commas, as in the
// SQLite store (a category is a configured word, never a comma).
func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

type scanner interface{ Scan(...any) error }

// ReserveSend implements survey.Store. One upsert decides: a new row, or
// an old one last sent at or before since, is taken; otherwise nothing is
// returned. Concurrent reservations of one address wait on its row and
// re-check the condition, so exactly one wins.
func (s *Store) ReserveSend(ctx context.Context, org, hash string, at, since time.Time) error {
	var got int64
	err := s.db.QueryRowContext(ctx, `INSERT INTO survey_sent(org, addr_hash, at)
		SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM survey_unsubscribed WHERE addr_hash = $2)
		ON CONFLICT (org, addr_hash) DO UPDATE SET at = excluded.at WHERE survey_sent.at <= $4
		RETURNING at`, org, hash, ms(at), ms(since)).Scan(&got)
	if err == nil {
		return nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("reserve send: %w", err)
	}
	var unsubscribed bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM survey_unsubscribed WHERE addr_hash = $1)`, hash).Scan(&unsubscribed); err != nil {
		return fmt.Errorf("reserve send: %w", err)
	}
	if unsubscribed {
		return survey.ErrUnsubscribed
	}
	return survey.ErrRecent
}

// ReleaseSend implements survey.Store.
func (s *Store) ReleaseSend(ctx context.Context, org, hash string, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM survey_sent WHERE org = $1 AND addr_hash = $2 AND at = $3`, org, hash, ms(at)); err != nil {
		return fmt.Errorf("release send: %w", err)
	}
	return nil
}

// Unsubscribe implements survey.Store.
func (s *Store) Unsubscribe(ctx context.Context, hash string, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO survey_unsubscribed(addr_hash, at) VALUES($1, $2) ON CONFLICT DO NOTHING`, hash, ms(at)); err != nil {
		return fmt.Errorf("unsubscribe: %w", err)
	}
	return nil
}

// SaveInvitation implements survey.Store.
func (s *Store) SaveInvitation(ctx context.Context, inv survey.Invitation) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO survey_invitations(id, org, site, counter, device, operator, service, channel, lang, created, expires)
		VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
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
		FROM survey_invitations WHERE id = $1`, id).Scan(&inv.ID, &inv.Org, &inv.Site, &inv.Counter, &inv.Device, &inv.Operator, &inv.Service, &ch, &inv.Lang, &created, &expires)
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

func scanAnswer(r scanner) (survey.Answer, error) {
	var a survey.Answer
	var ch string
	var rs string
	var at, rat int64
	err := r.Scan(&a.Seq, &a.ID, &a.Invitation, &a.Org, &a.Site, &a.Counter, &a.Device, &a.Operator, &a.Service, &ch, &a.Lang,
		&a.Score, &at, &a.Voter, &rs, &a.Comment, &rat, &a.VoteSpooled, &a.DetailSpooled)
	a.Channel, a.Time, a.ReasonsAt, a.Reasons = survey.Channel(ch), fromMS(at), fromMS(rat), split(rs)
	return a, err
}

// RecordAnswer implements survey.Store.
func (s *Store) RecordAnswer(ctx context.Context, a survey.Answer, voterSince time.Time, f *survey.FollowUp) (survey.Answer, bool, error) {
	if err := a.Validate(); err != nil {
		return a, false, err
	}
	var (
		old      survey.Answer
		repeated bool
		fid      int64
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if a.Voter != "" {
			// One voter's answers at one counter, from any replica, one
			// at a time: the check below and the insert are then atomic.
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('survey-voter/' || $1 || '/' || $2, 0))`,
				a.Voter, a.Counter); err != nil {
				return err
			}
		}
		var err error
		old, err = scanAnswer(tx.QueryRowContext(ctx, `SELECT `+answerCols+` FROM survey_answers WHERE id = $1`, a.ID))
		switch {
		case err == nil:
			repeated = true
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if a.Voter != "" {
			var replayed bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM survey_answers WHERE voter = $1 AND counter = $2 AND at > $3)`,
				a.Voter, a.Counter, ms(voterSince)).Scan(&replayed); err != nil {
				return err
			}
			if replayed {
				return survey.ErrReplayed
			}
		}
		// Another replica may insert the same id meanwhile: the unique
		// index makes this insert wait for it and then do nothing.
		err = tx.QueryRowContext(ctx, `INSERT INTO survey_answers(id, invitation, org, site, counter, device, operator, service, channel, lang, score, at, voter)
			VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (id) DO NOTHING RETURNING seq`,
			a.ID, a.Invitation, a.Org, a.Site, a.Counter, a.Device, a.Operator, a.Service, string(a.Channel), a.Lang, a.Score, ms(a.Time), a.Voter).Scan(&a.Seq)
		if errors.Is(err, sql.ErrNoRows) {
			old, err = scanAnswer(tx.QueryRowContext(ctx, `SELECT `+answerCols+` FROM survey_answers WHERE id = $1`, a.ID))
			repeated = err == nil
			return err
		}
		if err != nil || f == nil {
			return err
		}
		return tx.QueryRowContext(ctx, `INSERT INTO survey_followups(answer, org, site, counter, operator, service, channel, score, reasons, comment, contact, lang, responsible, opened, due, state)
			VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id`,
			a.ID, f.Org, f.Site, f.Counter, f.Operator, f.Service, string(f.Channel), f.Score, strings.Join(f.Reasons, ","), f.Comment,
			f.Contact, f.Lang, f.Responsible, ms(f.Opened), ms(f.Due), string(survey.FollowUpOpen)).Scan(&fid)
	})
	switch {
	case errors.Is(err, survey.ErrReplayed):
		return a, false, err
	case err != nil:
		return a, false, fmt.Errorf("record answer: %w", err)
	case repeated:
		return old, false, nil
	}
	if f != nil {
		f.ID, f.Answer, f.State = fid, a.ID, survey.FollowUpOpen
	}
	a.Time = fromMS(ms(a.Time))
	return a, true, nil
}

// Answer implements survey.Store.
func (s *Store) Answer(ctx context.Context, id string) (survey.Answer, error) {
	a, err := scanAnswer(s.db.QueryRowContext(ctx, `SELECT `+answerCols+` FROM survey_answers WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, survey.ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("answer: %w", err)
	}
	return a, nil
}

// SetReasons implements survey.Store. The answer's row is locked, so two
// pages sent at once store one set of reasons.
func (s *Store) SetReasons(ctx context.Context, id string, rs []string, comment, contact string, at time.Time) (survey.Answer, bool, error) {
	var a survey.Answer
	joined := strings.Join(rs, ",")
	set := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		a, err = scanAnswer(tx.QueryRowContext(ctx, `SELECT `+answerCols+` FROM survey_answers WHERE id = $1 FOR UPDATE`, id))
		if err != nil || !a.ReasonsAt.IsZero() {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE survey_answers SET reasons = $1, comment = $2, reasons_at = $3 WHERE id = $4`,
			joined, comment, ms(at), id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE survey_followups SET reasons = $1, comment = $2, contact = CASE WHEN $3 <> '' THEN $3 ELSE contact END
			WHERE answer = $4 AND state = $5`, joined, comment, contact, id, string(survey.FollowUpOpen)); err != nil {
			return fmt.Errorf("follow-up: %w", err)
		}
		set = true
		return nil
	})
	if errors.Is(err, sql.ErrNoRows) {
		return a, false, survey.ErrNotFound
	}
	if err != nil {
		return a, false, fmt.Errorf("set reasons: %w", err)
	}
	if set {
		a.Reasons, a.Comment, a.ReasonsAt = split(joined), comment, fromMS(ms(at))
	}
	return a, set, nil
}

// MarkSpooled implements survey.Store.
func (s *Store) MarkSpooled(ctx context.Context, id string, vote, detail bool) error {
	q := `UPDATE survey_answers SET vote_spooled = vote_spooled OR $1, detail_spooled = detail_spooled OR $2 WHERE id = $3`
	if _, err := s.db.ExecContext(ctx, q, vote, detail, id); err != nil {
		return fmt.Errorf("mark spooled: %w", err)
	}
	return nil
}

// Unspooled implements survey.Store.
func (s *Store) Unspooled(ctx context.Context, limit int) ([]survey.Answer, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+answerCols+` FROM survey_answers
		WHERE NOT vote_spooled OR (reasons_at > 0 AND NOT detail_spooled) ORDER BY seq LIMIT $1`, limit)
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
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("unspooled: %w", err)
	}
	return out, nil
}

const followCols = `id, answer, org, site, counter, operator, service, channel, score, reasons, comment, contact, lang, responsible,
	opened, due, state, closed, closed_by, outcome, notified, escalated`

func scanFollowUp(r scanner) (survey.FollowUp, error) {
	var f survey.FollowUp
	var ch, state string
	var rs string
	var opened, due, closed, notified, escalated int64
	err := r.Scan(&f.ID, &f.Answer, &f.Org, &f.Site, &f.Counter, &f.Operator, &f.Service, &ch, &f.Score, &rs, &f.Comment, &f.Contact,
		&f.Lang, &f.Responsible, &opened, &due, &state, &closed, &f.ClosedBy, &f.Outcome, &notified, &escalated)
	f.Channel, f.Reasons, f.State = survey.Channel(ch), split(rs), survey.FollowUpState(state)
	f.Opened, f.Due, f.Closed, f.Notified, f.Escalated = fromMS(opened), fromMS(due), fromMS(closed), fromMS(notified), fromMS(escalated)
	return f, err
}

// FollowUps implements survey.Store.
func (s *Store) FollowUps(ctx context.Context, flt survey.FollowUpFilter) ([]survey.FollowUp, error) {
	q := `SELECT ` + followCols + ` FROM survey_followups WHERE true`
	var args []any
	arg := func(cond string, v any) {
		args = append(args, v)
		q += fmt.Sprintf(` AND `+cond, len(args))
	}
	if flt.State != "" {
		arg(`state = $%d`, string(flt.State))
	}
	if flt.Org != "" {
		arg(`org = $%d`, flt.Org)
	}
	if flt.Site != "" {
		arg(`site = $%d`, flt.Site)
	}
	if !flt.Overdue.IsZero() {
		arg(`state = $%d`, string(survey.FollowUpOpen))
		arg(`due < $%d AND escalated = 0`, ms(flt.Overdue))
	}
	limit := flt.Limit
	if limit <= 0 {
		limit = 500
	}
	args = append(args, limit)
	q += fmt.Sprintf(` ORDER BY due, id LIMIT $%d`, len(args))
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
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("follow-ups: %w", err)
	}
	return out, nil
}

// FollowUp implements survey.Store.
func (s *Store) FollowUp(ctx context.Context, id int64) (survey.FollowUp, error) {
	f, err := scanFollowUp(s.db.QueryRowContext(ctx, `SELECT `+followCols+` FROM survey_followups WHERE id = $1`, id))
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
	f, err := scanFollowUp(s.db.QueryRowContext(ctx, `UPDATE survey_followups SET state = $1, closed = $2, closed_by = $3, outcome = $4
		WHERE id = $5 AND state = $6 RETURNING `+followCols,
		string(survey.FollowUpClosed), ms(at), by, outcome, id, string(survey.FollowUpOpen)))
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return f, fmt.Errorf("close follow-up: %w", err)
	}
	// Nothing open with that id: closed already, or none.
	if f, err = s.FollowUp(ctx, id); err != nil {
		return f, err
	}
	return f, survey.ErrClosed
}

func (s *Store) mark(ctx context.Context, col string, id int64, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE survey_followups SET `+col+` = $1 WHERE id = $2`, ms(at), id)
	if err != nil {
		return fmt.Errorf("follow-up %s: %w", col, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("follow-up %s: %w", col, err)
	} else if n == 0 {
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
	t1, err := s.db.ExecContext(ctx, `DELETE FROM survey_sent WHERE at < $1`, ms(sentBefore))
	if err != nil {
		return 0, fmt.Errorf("forget: %w", err)
	}
	t2, err := s.db.ExecContext(ctx, `UPDATE survey_followups SET contact = '' WHERE state = $1 AND closed < $2 AND contact <> ''`,
		string(survey.FollowUpClosed), ms(closedBefore))
	if err != nil {
		return 0, fmt.Errorf("forget: %w", err)
	}
	n1, err := t1.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("forget: %w", err)
	}
	n2, err := t2.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("forget: %w", err)
	}
	return int(n1 + n2), nil
}

// inTx runs fn in a transaction (READ COMMITTED, PostgreSQL's default) and
// commits when it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback() //nolint:errcheck // the error that made us roll back is the one to report
		return err
	}
	return tx.Commit()
}
