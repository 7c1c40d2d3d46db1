package ratings

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Windows keeps what the watcher judges from between votes: per site the
// negative streak, the satisfied window and whether satisfaction_drop is
// raised; per counter the run of satisfied votes. One process keeps them
// in memory (Memory); replicas that share the work of one fleet keep them
// in their shared store (backend/alert/postgres), so that each judges a
// site from every replica's votes, not from the part it happened to take.
type Windows interface {
	// Site applies fn to the state of the site key and keeps the result,
	// atomically against every other call for key. fn may run more than
	// once (a retried transaction) and must only change what it is given.
	Site(ctx context.Context, key string, fn func(*SiteWindow)) error
	// Counter does the same for the satisfied run of the counter key.
	Counter(ctx context.Context, key string, fn func(run *int)) error
}

// SiteWindow is one site's running state.
type SiteWindow struct {
	Streak  int      `json:"streak"`  // negative votes in a row
	Recent  []Sample `json:"recent"`  // valid votes within the window, oldest first
	Dropped bool     `json:"dropped"` // satisfaction_drop is raised
}

// Sample is one valid vote in a site's window.
type Sample struct {
	At        int64 `json:"t"` // Unix milliseconds
	Satisfied bool  `json:"s"`
}

// add puts a vote into the window in time order (replicas hand votes over
// in no global order) and drops what fell out of it: votes older than
// window before the newest, and the oldest beyond maxVotes.
func (w *SiteWindow) add(at time.Time, satisfied bool, window time.Duration, maxVotes int) {
	s := Sample{At: at.UnixMilli(), Satisfied: satisfied}
	i, _ := slices.BinarySearchFunc(w.Recent, s.At, func(e Sample, t int64) int {
		switch {
		case e.At <= t: // equal times keep arrival order
			return -1
		default:
			return 1
		}
	})
	w.Recent = slices.Insert(w.Recent, i, s)
	newest := w.Recent[len(w.Recent)-1].At
	cut := 0
	for cut < len(w.Recent) && (newest-w.Recent[cut].At > window.Milliseconds() || len(w.Recent)-cut > maxVotes) {
		cut++
	}
	w.Recent = slices.Delete(w.Recent, 0, cut)
}

// share is the satisfied share of the window and its size.
func (w *SiteWindow) share() (float64, int) {
	satisfied := 0
	for _, s := range w.Recent {
		if s.Satisfied {
			satisfied++
		}
	}
	n := len(w.Recent)
	if n == 0 {
		return 0, 0
	}
	return float64(satisfied) / float64(n), n
}

// Memory is Windows in one process's memory.
type Memory struct {
	mu       sync.Mutex
	sites    map[string]*SiteWindow
	counters map[string]int
}

// NewMemory returns empty windows.
func NewMemory() *Memory {
	return &Memory{sites: map[string]*SiteWindow{}, counters: map[string]int{}}
}

// Site implements Windows.
func (m *Memory) Site(_ context.Context, key string, fn func(*SiteWindow)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.sites[key]
	if w == nil {
		w = &SiteWindow{}
		m.sites[key] = w
	}
	fn(w)
	return nil
}

// Counter implements Windows.
func (m *Memory) Counter(_ context.Context, key string, fn func(run *int)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	run := m.counters[key]
	fn(&run)
	if run == 0 {
		delete(m.counters, key)
	} else {
		m.counters[key] = run
	}
	return nil
}
