package backend

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
)

// journal records the order parts start and stop in.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(e string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.events)
}

// recPart records its start and stop; with fail set it fails at once.
type recPart struct {
	name    string
	j       *journal
	fail    error
	started chan struct{} // nil: not a starter
	closed  int
}

func (p *recPart) Run(ctx context.Context) error {
	p.j.add("start " + p.name)
	if p.started != nil {
		close(p.started)
	}
	if p.fail != nil {
		p.j.add("fail " + p.name)
		return p.fail
	}
	<-ctx.Done()
	p.j.add("stop " + p.name)
	return nil
}

func (p *recPart) Close() error { p.closed++; return nil }

type starterPart struct{ *recPart }

func (p starterPart) Started() <-chan struct{} { return p.started }

// only keeps the events with prefix.
func only(events []string, prefix string) []string {
	var out []string
	for _, e := range events {
		if strings.HasPrefix(e, prefix) {
			out = append(out, e)
		}
	}
	return out
}

func newSupervisor(parts ...Part) *supervisor {
	s := &supervisor{log: slog.New(slog.DiscardHandler)}
	for i, p := range parts {
		s.add(string(rune('a'+i)), p)
	}
	return s
}

func TestSupervisorStartsInOrderAndStopsInReverse(t *testing.T) {
	j := &journal{}
	a := &recPart{name: "a", j: j}
	b := starterPart{&recPart{name: "b", j: j, started: make(chan struct{})}}
	c := &recPart{name: "c", j: j}
	s := newSupervisor(a, b, c)
	ctx, cancel := context.WithCancel(t.Context())
	up := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- s.run(ctx, func() { close(up) }) }()
	<-up
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := j.list()
	// b is a starter, so c starts only once b serves; a part may start
	// late (its goroutine ran after the next one), but stops are strictly
	// in reverse order.
	if i, k := slices.Index(got, "start b"), slices.Index(got, "start c"); i < 0 || k < i {
		t.Fatalf("c started before the starter b: %v", got)
	}
	if stops := only(got, "stop "); !slices.Equal(stops, []string{"stop c", "stop b", "stop a"}) {
		t.Fatalf("stop order %v, want c, b, a", stops)
	}
	if err := s.run(t.Context(), func() {}); err == nil {
		t.Fatal("a second run was allowed")
	}
	s.release()
	if a.closed != 0 || c.closed != 0 {
		t.Fatal("release after run closed parts a second time")
	}
}

func TestSupervisorStopsTheRestWhenAPartFails(t *testing.T) {
	j := &journal{}
	boom := errors.New("boom")
	a := &recPart{name: "a", j: j}
	b := &recPart{name: "b", j: j}
	c := starterPart{&recPart{name: "c", j: j, started: make(chan struct{}), fail: boom}}
	s := newSupervisor(a, b, c)
	// c closes Started before it fails: whether up runs is a race that
	// does not matter here.
	err := s.run(t.Context(), func() {})
	if !errors.Is(err, boom) {
		t.Fatalf("run returned %v, want the part's error", err)
	}
	got := j.list()
	if stops := only(got, "stop "); !slices.Equal(stops, []string{"stop b", "stop a"}) {
		t.Fatalf("after the failure %v, want b then a stopped", got)
	}
}

func TestSupervisorReleasesWhatItNeverRan(t *testing.T) {
	j := &journal{}
	a, b := &recPart{name: "a", j: j}, &recPart{name: "b", j: j}
	s := newSupervisor(a, b)
	s.release()
	s.release()
	if a.closed != 1 || b.closed != 1 {
		t.Fatalf("closed a %d, b %d times; want once each", a.closed, b.closed)
	}
	if err := s.run(t.Context(), func() {}); err == nil {
		t.Fatal("run after release was allowed")
	}
}
