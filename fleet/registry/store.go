package registry

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Store holds the current fleet snapshot and replaces it on Reload. Readers
// call Current on every use and never block a reload; a reload that fails
// leaves the previous snapshot in place.
type Store struct {
	current atomic.Pointer[Registry]
	// reloadMu serialises reloads so two concurrent ones cannot finish in
	// the opposite order of their reads of the file.
	reloadMu sync.Mutex
}

// NewStore returns a store holding initial; nil means an empty fleet.
func NewStore(initial *Registry) *Store {
	s := &Store{}
	if initial == nil {
		initial = &Registry{}
	}
	s.current.Store(initial)
	return s
}

// Open loads the fleet file at path into a new store.
func Open(path string) (*Store, error) {
	r, err := Load(path)
	if err != nil {
		return nil, err
	}
	return NewStore(r), nil
}

// Current returns the snapshot in use. It is never nil.
func (s *Store) Current() *Registry { return s.current.Load() }

// Reload reads the fleet file at path and, only if it is valid, makes it
// current. On error the previous snapshot stays and the error says why.
func (s *Store) Reload(path string) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	r, err := Load(path)
	if err != nil {
		return fmt.Errorf("reload fleet, keeping the previous one: %w", err)
	}
	s.current.Store(r)
	return nil
}

// Set makes r current, for sources other than the fleet file (a fleet
// database builds its snapshots itself). A nil r is ignored.
func (s *Store) Set(r *Registry) {
	if r == nil {
		return
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	s.current.Store(r)
}
