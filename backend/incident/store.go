package incident

import (
	"context"
	"time"

	"github.com/semko/semko/backend/access"
)

// Store keeps incidents and their trails. The desk serialises its own
// changes, so implementations need not detect lost updates. Implemented
// by incident/sqlite; incident/storetest is the conformance suite every
// implementation runs.
type Store interface {
	// Create stores a new incident and its first step, assigning both IDs
	// (in.ID, st.ID, st.IncidentID).
	Create(ctx context.Context, in *Incident, st *Step) error
	// Save replaces the incident and appends st (if not nil) to its trail,
	// in one transaction. ErrNotFound when the incident does not exist.
	Save(ctx context.Context, in *Incident, st *Step) error
	// Get returns one incident, ErrNotFound if none.
	Get(ctx context.Context, id int64) (Incident, error)
	// Trail returns the incident's steps, oldest first.
	Trail(ctx context.Context, id int64) ([]Step, error)
	// List returns incidents in f's scope matching f, newest first.
	List(ctx context.Context, f Filter) ([]Incident, error)
	// Due returns open incidents whose deadline is at or before t and that
	// are not yet marked overdue.
	Due(ctx context.Context, t time.Time) ([]Incident, error)
	// Personal returns closed incidents, closed before t, that still hold
	// the customer's name or contact.
	Personal(ctx context.Context, t time.Time) ([]Incident, error)
	Close() error
}

// Filter selects incidents. The zero Scope selects nothing: a caller must
// say whose incidents it lists.
type Filter struct {
	Scope      access.Scope
	State      State
	Department string
	Site       string // one site of the scope ("" all)
	Type       Type   // one type ("" all)
	Open       bool   // only incidents not closed
	Limit      int    // default 100, at most 1000
}

// ListLimit clamps f.Limit.
func (f Filter) ListLimit() int {
	switch {
	case f.Limit <= 0:
		return 100
	case f.Limit > 1000:
		return 1000
	}
	return f.Limit
}
