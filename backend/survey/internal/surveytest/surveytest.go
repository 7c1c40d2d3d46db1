// Package surveytest builds a survey engine for the sub-packages' tests:
// a real SQLite store, a small fleet, a settable clock, and recorders for
// the spool, the intake, the mail and the alerts (the end-to-end tests in
// backend/ run the real ones).
package surveytest

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/calendar"
	"github.com/semko/semko/backend/alert/notify/email"
	"github.com/semko/semko/backend/survey"
	"github.com/semko/semko/backend/survey/engine"
	"github.com/semko/semko/backend/survey/sqlite"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/protocol"
)

// T0 is a Monday, 10:00 in Sofia.
var T0 = time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)

// Env is an engine and what it talks to.
type Env struct {
	Engine *engine.Engine
	Store  survey.Store
	Reg    *registry.Registry
	Cal    *calendar.Sites

	mu        sync.Mutex
	now       time.Time
	Lines     [][]byte
	Votes     []protocol.Vote
	Mails     []email.Message
	Raised    []alert.Finding
	Resolved  []alert.Kind
	FailSpool bool
}

// Now is the env's clock.
func (e *Env) Now() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now }

// Advance moves the clock.
func (e *Env) Advance(d time.Duration) { e.mu.Lock(); e.now = e.now.Add(d); e.mu.Unlock() }

// Append records spool lines.
func (e *Env) Append(_ context.Context, recs ...[]byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.FailSpool {
		return errors.New("spool full")
	}
	for _, r := range recs {
		e.Lines = append(e.Lines, bytes.Clone(r))
	}
	return nil
}

// Accept records votes as the intake would take them.
func (e *Env) Accept(_ context.Context, t protocol.Topic, payload []byte, _ time.Time) error {
	v, err := protocol.Decode[protocol.Vote](payload)
	if err != nil {
		return err
	}
	if v.Device != t.Device || t.Kind != protocol.KindVote {
		return errors.New("vote on the wrong topic")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.FailSpool {
		return errors.New("spool full")
	}
	e.Votes = append(e.Votes, v)
	return nil
}

// Send records mail.
func (e *Env) Send(_ context.Context, m email.Message) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.Mails = append(e.Mails, m)
	return nil
}

// Raise records a finding.
func (e *Env) Raise(_ context.Context, f alert.Finding) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.Raised = append(e.Raised, f)
	return nil
}

// Resolve records a resolution.
func (e *Env) Resolve(_ context.Context, k alert.Kind, _ alert.Subject, _ string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.Resolved = append(e.Resolved, k)
	return nil
}

// Snapshot returns copies of what was recorded.
func (e *Env) Snapshot() (lines [][]byte, votes []protocol.Vote, mails []email.Message, raised []alert.Finding, resolved []alert.Kind) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([][]byte(nil), e.Lines...), append([]protocol.Vote(nil), e.Votes...), append([]email.Message(nil), e.Mails...),
		append([]alert.Finding(nil), e.Raised...), append([]alert.Kind(nil), e.Resolved...)
}

// Fleet is the test fleet: org o1 ("Община Тест") with site s1 (Sofia)
// and counters c1 (keypad kp-1) and c2 (no keypad); org o2 with c3.
func Fleet(t testing.TB) *registry.Registry {
	r, err := registry.Build(registry.File{
		Organisations: []registry.FileOrg{
			{ID: "o1", Name: "Община Тест", Timezone: "Europe/Sofia", Sites: []registry.FileSite{{
				ID: "s1", Name: "Център", Responsible: &registry.Responsible{Name: "Мария", Email: "maria@o1.example", Lang: "bg"},
				Counters: []registry.FileCounter{{ID: "c1", Name: "Гише 1", Device: "kp-1", Operator: "op-1", Service: "permits"}, {ID: "c2", Name: "Гише 2"}},
			}}},
			{ID: "o2", Name: "Bank", Timezone: "Europe/Sofia", Sites: []registry.FileSite{{ID: "s2", Counters: []registry.FileCounter{{ID: "c3", Device: "kp-3"}}}}},
		},
		Devices: []registry.FileDevice{
			{ID: "kp-1", SecretHash: "$2a$10$abcdefghijklmnopqrstuu5Zb3x8yH4p5m6Q9O7mBf1Y3vK0cW2Ha"},
			{ID: "kp-3", SecretHash: "$2a$10$abcdefghijklmnopqrstuu5Zb3x8yH4p5m6Q9O7mBf1Y3vK0cW2Ha"},
		},
		Operators: []registry.FileOperator{{ID: "op-1", Name: "Иван", Org: "o1"}},
		Services:  []registry.FileService{{ID: "permits", Name: "Разрешителни"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// New builds an Env; change opts with edit before the engine is made.
func New(t testing.TB, edit func(*engine.Options)) *Env {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "survey.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	signer, err := survey.NewSigner(bytes.Repeat([]byte("s"), 32))
	if err != nil {
		t.Fatal(err)
	}
	reg := Fleet(t)
	cals, err := calendar.NewSites(calendar.Spec{}, nil, map[string]string{"s1": "Europe/Sofia", "s2": "Europe/Sofia"})
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Store: store, Reg: reg, Cal: cals, now: T0}
	opts := engine.Options{
		Store: store, Signer: signer, Registry: func() *registry.Registry { return reg }, Votes: env, Spool: env,
		Mailer: env, Alerts: env, Calendar: cals.Of, BaseURL: "http://survey.test", Now: env.Now,
	}
	if edit != nil {
		edit(&opts)
	}
	e, err := engine.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	env.Engine = e
	return env
}
