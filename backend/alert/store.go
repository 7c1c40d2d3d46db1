package alert

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// Errors of the manager and its stores.
var (
	// ErrNotFound: no alert or silence has the given id.
	ErrNotFound = errors.New("not found")
	// ErrResolved: the alert is already resolved; it can be neither
	// acknowledged nor resolved again.
	ErrResolved = errors.New("alert already resolved")
	// ErrInvalid is wrapped by errors for requests that can never succeed
	// (a silence without matchers, an unknown filter state).
	ErrInvalid = errors.New("invalid")
)

// Action names an entry of the audit trail.
type Action string

const (
	ActionRaised       Action = "raised"       // opened, state firing
	ActionAcknowledged Action = "acknowledged" // someone took it
	ActionResolved     Action = "resolved"     // closed by hand or because its condition cleared
	ActionEscalated    Action = "escalated"    // its deadline passed unacknowledged
	ActionExpired      Action = "expired"      // closed after a quiet period (event alerts)
)

// Event is one entry of an alert's audit trail.
type Event struct {
	ID      int64     `json:"id"`
	AlertID int64     `json:"alert_id"`
	Time    time.Time `json:"time"`
	Action  Action    `json:"action"`
	State   State     `json:"state"` // the state after the event
	// Actor is the person who acted, empty for the system.
	Actor   string `json:"actor,omitempty"`
	Comment string `json:"comment,omitempty"`
	// Escalation is the alert's level after the event.
	Escalation int `json:"escalation"`
}

// Filter selects alerts for List. Zero fields match everything.
type Filter struct {
	// State is firing, acknowledged, resolved, "open" (firing or
	// acknowledged) or empty (all).
	State    string
	Kind     Kind
	Severity Severity
	Org      string
	Site     string
	Device   string
	// Since keeps alerts updated at or after it.
	Since time.Time
	// Limit caps the answer, newest first. Default and maximum 1000.
	Limit int
}

// MaxList is the most alerts one List answers.
const MaxList = 1000

// Check reports a filter that can match nothing because it is malformed.
func (f Filter) Check() error {
	switch State(f.State) {
	case "", "open", StateFiring, StateAcknowledged, StateResolved:
		return nil
	}
	return errors.Join(ErrInvalid, errors.New("state must be firing, acknowledged, resolved or open"))
}

// Match reports whether a passes the filter.
func (f Filter) Match(a Alert) bool {
	switch {
	case f.State == "open" && !a.Open(),
		f.State != "" && f.State != "open" && State(f.State) != a.State,
		f.Kind != "" && f.Kind != a.Kind,
		f.Severity != "" && f.Severity != a.Severity,
		f.Org != "" && f.Org != a.Subject.Org,
		f.Site != "" && f.Site != a.Subject.Site,
		f.Device != "" && f.Device != a.Subject.Device,
		!f.Since.IsZero() && a.UpdatedAt.Before(f.Since):
		return false
	}
	return true
}

func (f Filter) limit() int {
	if f.Limit <= 0 || f.Limit > MaxList {
		return MaxList
	}
	return f.Limit
}

// Store keeps alerts, their audit trail and silences. The manager holds
// open alerts in memory as well and calls Store under its own lock, so an
// implementation need not order concurrent writes, unless several managers
// share it: then it is an Updater too.
type Store interface {
	// Save inserts a (assigning a.ID when it is 0) or updates it, and
	// appends ev to its audit trail when ev is not nil (ev.AlertID is set
	// by Save), both or neither.
	Save(ctx context.Context, a *Alert, ev *Event) error
	// OpenAlerts returns every alert not resolved, for a restart.
	OpenAlerts(ctx context.Context) ([]Alert, error)
	// Alerts returns the alerts f matches, most recently updated first.
	Alerts(ctx context.Context, f Filter) ([]Alert, error)
	// Alert returns one alert, or ErrNotFound.
	Alert(ctx context.Context, id int64) (Alert, error)
	// Events returns an alert's audit trail, oldest first.
	Events(ctx context.Context, alertID int64) ([]Event, error)
	// SaveSilence inserts or replaces a silence by ID.
	SaveSilence(ctx context.Context, s Silence) error
	// DeleteSilence removes a silence, or returns ErrNotFound.
	DeleteSilence(ctx context.Context, id string) error
	// Silences returns every stored silence, expired ones included.
	Silences(ctx context.Context) ([]Silence, error)
}

// Which names the alert an Update changes: alert ID, in any state, when ID
// is set; otherwise the open alert of Kind and Subject (one Finding.Key).
type Which struct {
	ID      int64
	Kind    Kind
	Subject Subject
}

// Updater is implemented by a Store that several managers share (one
// PostgreSQL database, several backend replicas; Options.Shared). Each
// change is then a read, a decision and a write of one alert in one
// transaction, so no manager overwrites another's change with its older
// copy, and two managers raising the same finding never open two alerts.
type Updater interface {
	// Update locks the alert w names and calls fn once with a copy of it,
	// or with nil when there is none (no alert w.ID; no open alert of the
	// kind and subject). Selected by kind and subject, the key itself is
	// locked first, so a concurrent Update of the same key waits and then
	// finds what this one inserted. When fn returns an alert, Update saves
	// it and ev as Save does (inserting it, and setting its ID, when its ID
	// is 0) before the lock is released; when fn returns nil nothing is
	// written. An error from fn is returned as it is, and nothing is
	// written. fn must not call the store.
	Update(ctx context.Context, w Which, fn func(cur *Alert) (*Alert, *Event, error)) error
}

// MemStore is a Store in memory: for tests and for running without a disk.
// Resolved alerts are kept too, so it grows with history; use the SQLite
// store in production.
type MemStore struct {
	mu       sync.Mutex
	alerts   []Alert // by ID-1
	events   []Event
	silences map[string]Silence
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{silences: map[string]Silence{}} }

var _ Updater = (*MemStore)(nil)

func (m *MemStore) Save(_ context.Context, a *Alert, ev *Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saveLocked(a, ev)
}

func (m *MemStore) saveLocked(a *Alert, ev *Event) error {
	if a.ID == 0 {
		a.ID = int64(len(m.alerts) + 1)
		m.alerts = append(m.alerts, Alert{})
	}
	if a.ID < 1 || a.ID > int64(len(m.alerts)) {
		return ErrNotFound
	}
	m.alerts[a.ID-1] = cloneAlert(*a)
	if ev != nil {
		ev.AlertID = a.ID
		ev.ID = int64(len(m.events) + 1)
		m.events = append(m.events, *ev)
	}
	return nil
}

// Update implements Updater; the store's lock is the alert's.
func (m *MemStore) Update(_ context.Context, w Which, fn func(cur *Alert) (*Alert, *Event, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var cur *Alert
	if w.ID != 0 {
		if w.ID >= 1 && w.ID <= int64(len(m.alerts)) {
			a := cloneAlert(m.alerts[w.ID-1])
			cur = &a
		}
	} else {
		key := string(w.Kind) + "|" + w.Subject.Key()
		for i := range m.alerts { // oldest first, as the SQL stores choose
			if m.alerts[i].Open() && m.alerts[i].Key() == key {
				a := cloneAlert(m.alerts[i])
				cur = &a
				break
			}
		}
	}
	a, ev, err := fn(cur)
	if err != nil || a == nil {
		return err
	}
	return m.saveLocked(a, ev)
}

func (m *MemStore) OpenAlerts(context.Context) ([]Alert, error) {
	return m.alertsMatching(Filter{State: "open"}, -1), nil
}

func (m *MemStore) Alerts(_ context.Context, f Filter) ([]Alert, error) {
	return m.alertsMatching(f, f.limit()), nil
}

// alertsMatching returns up to limit alerts (all for a negative limit),
// most recently updated first.
func (m *MemStore) alertsMatching(f Filter, limit int) []Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Alert
	for i := len(m.alerts) - 1; i >= 0; i-- {
		if f.Match(m.alerts[i]) {
			out = append(out, cloneAlert(m.alerts[i]))
		}
	}
	slices.SortStableFunc(out, func(a, b Alert) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
	if limit >= 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

func (m *MemStore) Alert(_ context.Context, id int64) (Alert, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id < 1 || id > int64(len(m.alerts)) {
		return Alert{}, ErrNotFound
	}
	return cloneAlert(m.alerts[id-1]), nil
}

func (m *MemStore) Events(_ context.Context, alertID int64) ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Event
	for _, e := range m.events {
		if e.AlertID == alertID {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m *MemStore) SaveSilence(_ context.Context, s Silence) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.silences[s.ID] = s
	return nil
}

func (m *MemStore) DeleteSilence(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.silences[id]; !ok {
		return ErrNotFound
	}
	delete(m.silences, id)
	return nil
}

func (m *MemStore) Silences(context.Context) ([]Silence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Silence, 0, len(m.silences))
	for _, s := range m.silences {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Silence) int { return a.StartsAt.Compare(b.StartsAt) })
	return out, nil
}

func cloneAlert(a Alert) Alert {
	if a.Details != nil {
		d := make(map[string]string, len(a.Details))
		for k, v := range a.Details {
			d[k] = v
		}
		a.Details = d
	}
	return a
}
