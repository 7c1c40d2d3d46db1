package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/ratings"
	"github.com/semko/semko/backend/alert/ratings/windowstest"
	"github.com/semko/semko/backend/alert/storetest"
	"github.com/semko/semko/internal/pglocal"
)

func TestMain(m *testing.M) { pglocal.Main(m) }

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) alert.Store {
		s, err := Open(context.Background(), pglocal.SharedDB(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// A manager restarted on the same database finds its open alert and silence
// and keeps updating the same alert.
func TestManagerRestart(t *testing.T) {
	ctx := context.Background()
	path := pglocal.SharedDB(t)
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))
	f := alert.Finding{Kind: alert.KindOffline, Subject: alert.Subject{Org: "o1", Site: "s1", Device: "kp-1"}, Message: "offline"}

	start := func() (*alert.Manager, *Store) {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		m, err := alert.New(ctx, alert.Options{Store: s, Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		return m, s
	}
	m, s := start()
	if err := m.Raise(ctx, f); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddSilence(ctx, alert.Silence{Matchers: alert.Matchers{"site": "s1"}, EndsAt: clock.Now().Add(time.Hour), CreatedBy: "ops"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	m, s = start()
	defer s.Close()
	if err := m.Raise(ctx, f); err != nil {
		t.Fatal(err)
	}
	list, err := m.List(ctx, alert.Filter{})
	if err != nil || len(list) != 1 || list[0].Count != 2 {
		t.Fatalf("after restart: %+v, %v; want the same alert seen twice", list, err)
	}
	if len(m.Silences()) != 1 {
		t.Errorf("silence lost across restart")
	}
	if n, err := s.PurgeResolved(ctx, clock.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("purge of open alert: %d, %v", n, err)
	}
	if _, err := m.ResolveByHand(ctx, list[0].ID, "tech", "done"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PurgeResolved(ctx, clock.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Errorf("purge: %d, %v", n, err)
	}
}

// Two managers, each with its own connections to one database (two
// replicas): raising one finding through both, concurrently, counts one
// alert; what one raised the other acknowledges, and the first then does
// not escalate it.
func TestTwoManagersOneDatabase(t *testing.T) {
	ctx := context.Background()
	dsn := pglocal.SharedDB(t)
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))
	route, err := alert.NewRoute(alert.RouteConfig{Receivers: []string{"techs"}, Escalate: [][]string{{"lead"}}, Deadline: time.Hour},
		map[string]alert.Receiver{"techs": {Name: "techs"}, "lead": {Name: "lead"}})
	if err != nil {
		t.Fatal(err)
	}
	start := func() *alert.Manager {
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		m, err := alert.New(ctx, alert.Options{Store: s, Clock: clock, Route: route, Shared: true})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m1, m2 := start(), start()
	f := alert.Finding{Kind: alert.KindOffline, Subject: alert.Subject{Org: "o1", Site: "s1", Device: "kp-1"}, Message: "offline"}
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		m := m1
		if i%2 == 1 {
			m = m2
		}
		wg.Go(func() {
			if err := m.Raise(ctx, f); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	list, err := m2.List(ctx, alert.Filter{State: "open"})
	if err != nil || len(list) != 1 || list[0].Count != n {
		t.Fatalf("%d raises through two managers: %+v, %v; want one alert counted %d times", n, list, err, n)
	}
	id := list[0].ID
	if _, err := m2.Acknowledge(ctx, id, "maria", "on it"); err != nil {
		t.Fatalf("acknowledge through the other manager: %v", err)
	}
	clock.Advance(2 * time.Hour)
	if err := m1.CheckDeadlines(ctx); err != nil {
		t.Fatal(err)
	}
	a, evs, err := m1.Get(ctx, id)
	if err != nil || a.State != alert.StateAcknowledged || a.Escalation != 0 {
		t.Fatalf("after m1's deadline check: %+v, %v", a, err)
	}
	for _, ev := range evs {
		if ev.Action == alert.ActionEscalated {
			t.Errorf("acknowledged alert escalated: %+v", evs)
		}
	}
}

// Two stores on one database are two replicas' handles on the rating
// windows.
func TestWindows(t *testing.T) {
	windowstest.Run(t, func(t *testing.T) (ratings.Windows, ratings.Windows) {
		dsn := pglocal.SharedDB(t)
		var two [2]ratings.Windows
		for i := range two {
			s, err := Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			two[i] = s
		}
		return two[0], two[1]
	})
}
