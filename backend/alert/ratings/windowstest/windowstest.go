// Package windowstest is the conformance suite of ratings.Windows: the
// in-memory windows and the PostgreSQL ones (backend/alert/postgres) run
// the same tests.
package windowstest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/semko/semko/backend/alert/ratings"
)

// Run tests windows. open returns two handles on the same state, as two
// replicas have on one shared store (the memory implementation returns one
// value twice).
func Run(t *testing.T, open func(t *testing.T) (a, b ratings.Windows)) {
	ctx := context.Background()

	t.Run("KeptPerKey", func(t *testing.T) {
		a, b := open(t)
		t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
		if err := a.Site(ctx, "o1/s1", func(w *ratings.SiteWindow) {
			if w.Streak != 0 || len(w.Recent) != 0 || w.Dropped {
				t.Errorf("a new site's window is %+v, want empty", *w)
			}
			w.Streak, w.Dropped = 2, true
			w.Recent = []ratings.Sample{{At: t0.UnixMilli(), Satisfied: true}, {At: t0.Add(time.Second).UnixMilli()}}
		}); err != nil {
			t.Fatal(err)
		}
		var got ratings.SiteWindow
		if err := b.Site(ctx, "o1/s1", func(w *ratings.SiteWindow) { got = *w }); err != nil {
			t.Fatal(err)
		}
		if got.Streak != 2 || !got.Dropped || len(got.Recent) != 2 || got.Recent[0] != (ratings.Sample{At: t0.UnixMilli(), Satisfied: true}) ||
			got.Recent[1] != (ratings.Sample{At: t0.Add(time.Second).UnixMilli()}) {
			t.Errorf("the other handle reads %+v", got)
		}
		if err := b.Site(ctx, "o1/s2", func(w *ratings.SiteWindow) {
			if w.Streak != 0 || len(w.Recent) != 0 {
				t.Errorf("site s2 reads s1's window: %+v", *w)
			}
		}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("CounterRun", func(t *testing.T) {
		a, b := open(t)
		for range 3 {
			if err := a.Counter(ctx, "o1/s1/c1", func(run *int) { *run++ }); err != nil {
				t.Fatal(err)
			}
		}
		var got int
		if err := b.Counter(ctx, "o1/s1/c1", func(run *int) { got = *run; *run = 0 }); err != nil {
			t.Fatal(err)
		}
		if got != 3 {
			t.Errorf("run %d, want 3", got)
		}
		if err := a.Counter(ctx, "o1/s1/c1", func(run *int) { got = *run }); err != nil {
			t.Fatal(err)
		}
		if got != 0 {
			t.Errorf("run after reset %d, want 0", got)
		}
		// A counter and a site of one name are different states.
		if err := a.Site(ctx, "o1/s1/c1", func(w *ratings.SiteWindow) { got = w.Streak }); err != nil {
			t.Fatal(err)
		}
		if got != 0 {
			t.Errorf("the site window of the counter's key has streak %d", got)
		}
	})

	// Two replicas changing one site at once take turns: no change is lost.
	t.Run("ConcurrentChangesAllKept", func(t *testing.T) {
		a, b := open(t)
		const workers, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for i := range workers {
			h := a
			if i%2 == 1 {
				h = b
			}
			wg.Go(func() {
				for j := range each {
					err := h.Site(ctx, "o1/busy", func(w *ratings.SiteWindow) {
						w.Streak++
						w.Recent = append(w.Recent, ratings.Sample{At: int64(i*each + j)})
					})
					if err != nil {
						errs <- fmt.Errorf("worker %d: %w", i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		var got ratings.SiteWindow
		if err := a.Site(ctx, "o1/busy", func(w *ratings.SiteWindow) { got = *w }); err != nil {
			t.Fatal(err)
		}
		seen := map[int64]bool{}
		for _, s := range got.Recent {
			seen[s.At] = true
		}
		if got.Streak != workers*each || len(seen) != workers*each || len(got.Recent) != workers*each {
			t.Errorf("after %d changes: streak %d, %d samples (%d distinct)", workers*each, got.Streak, len(got.Recent), len(seen))
		}
	})
}
