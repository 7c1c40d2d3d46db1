package alert

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// A shared manager (the store is the truth, each change one store
// transaction) passes the manager's tests as the single-process one does.
func TestSharedModeBehavesTheSame(t *testing.T) {
	for name, test := range map[string]func(*testing.T){
		"RaiseDedupResolveAudit":                TestRaiseDedupResolveAudit,
		"Mute":                                  TestMute,
		"SiteOfflineResolvesWhenADeviceReturns": TestSiteOfflineResolvesWhenADeviceReturns,
		"GroupTiming":                           TestGroupTiming,
		"ResponsibleReceiver":                   TestResponsibleReceiver,
		"EscalationOnBusinessCalendar":          TestEscalationOnBusinessCalendar,
		"Expire":                                TestExpire,
		"RunNotifiesWithRetryOnFakeClock":       TestRunNotifiesWithRetryOnFakeClock,
		"RunEscalatesOnGocronJob":               TestRunEscalatesOnGocronJob,
		"RestartKeepsNotifiedTime":              TestRestartKeepsNotifiedTime,
	} {
		t.Run(name, func(t *testing.T) {
			sharedMode = true
			defer func() { sharedMode = false }()
			test(t)
		})
	}
}

func TestSharedNeedsAnUpdater(t *testing.T) {
	_, err := New(context.Background(), Options{Store: plainStore{NewMemStore()}, Shared: true})
	if err == nil {
		t.Fatal("a shared manager on a store without Update started")
	}
}

// plainStore hides MemStore's Update.
type plainStore struct{ Store }

// Two managers on one store, as two replicas on one database: what one
// raises the other acknowledges, the first then neither notifies nor
// escalates it, and both raising one finding count one alert.
func TestTwoManagersShareAlerts(t *testing.T) {
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(t0)
	route, err := NewRoute(RouteConfig{Receivers: []string{"techs"}, Escalate: [][]string{{"lead"}}, Deadline: time.Hour, GroupWait: time.Minute},
		map[string]Receiver{"techs": {Name: "techs"}, "lead": {Name: "lead"}})
	if err != nil {
		t.Fatal(err)
	}
	store := NewMemStore()
	m1 := newSharedManager(t, clock, store, route)
	m2 := newSharedManager(t, clock, store, route)

	if err := m1.Raise(ctx, offline("s1", "kp-1")); err != nil {
		t.Fatal(err)
	}
	if err := m1.Raise(ctx, offline("s1", "kp-2")); err != nil {
		t.Fatal(err)
	}
	open, _ := m2.List(ctx, Filter{State: "open"})
	if len(open) != 2 {
		t.Fatalf("m2 lists %d open alerts, want m1's two", len(open))
	}
	var kp1 Alert
	for _, a := range open {
		if a.Subject.Device == "kp-1" {
			kp1 = a
		}
	}
	acked, err := m2.Acknowledge(ctx, kp1.ID, "maria", "on it")
	if err != nil {
		t.Fatalf("acknowledge through m2 what m1 raised: %v", err)
	}
	if acked.State != StateAcknowledged {
		t.Fatalf("acknowledged = %+v", acked)
	}
	// m1 still holds kp-1 as firing in memory; a raise there must not undo
	// the acknowledgement.
	if err := m1.Raise(ctx, offline("s1", "kp-1")); err != nil {
		t.Fatal(err)
	}
	if a, _, _ := m1.Get(ctx, kp1.ID); a.State != StateAcknowledged || a.Count != 2 {
		t.Fatalf("after m1 raised it again: %+v; want acknowledged, counted twice", a)
	}

	// m1 dispatches and escalates: only kp-2 is notified and escalated.
	m1.Flush(ctx) // the group wait starts
	clock.Advance(2 * time.Minute)
	m1.Flush(ctx)
	notices := drain(m1)
	if len(notices) != 1 || len(notices[0].Alerts) != 1 || notices[0].Alerts[0].Subject.Device != "kp-2" {
		t.Fatalf("m1 notices %+v, want one for kp-2 only", notices)
	}
	clock.Advance(time.Hour)
	if err := m1.CheckDeadlines(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m2.CheckDeadlines(ctx); err != nil { // a second checker escalates nothing twice
		t.Fatal(err)
	}
	for _, a := range []Alert{kp1, open[0], open[1]} {
		_, evs, _ := m1.Get(ctx, a.ID)
		escalations := 0
		for _, ev := range evs {
			if ev.Action == ActionEscalated {
				escalations++
			}
		}
		want := 1
		if a.ID == kp1.ID {
			want = 0
		}
		if escalations != want {
			t.Errorf("alert %d (%s): %d escalations, want %d: %+v", a.ID, a.Subject.Device, escalations, want, evs)
		}
	}

	// Resolved through m1, acknowledged through m2: already resolved.
	if _, err := m1.ResolveByHand(ctx, kp1.ID, "ivan", "cable"); err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Acknowledge(ctx, kp1.ID, "maria", "again"); !errors.Is(err, ErrResolved) {
		t.Errorf("acknowledge a resolved alert: %v, want ErrResolved", err)
	}

	// Both raise one finding, concurrently: one alert, every raise counted.
	var wg sync.WaitGroup
	for i := range 20 {
		m := m1
		if i%2 == 1 {
			m = m2
		}
		wg.Go(func() {
			if err := m.Raise(ctx, offline("s2", "kp-9")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	list, _ := m1.List(ctx, Filter{State: "open", Device: "kp-9"})
	if len(list) != 1 || list[0].Count != 20 {
		t.Fatalf("20 raises through two managers: %+v; want one alert counted 20 times", list)
	}
	// The condition clears, seen by m2, which never had the alert in memory.
	if err := m2.Resolve(ctx, KindOffline, dev("s2", "kp-9"), "back"); err != nil {
		t.Fatal(err)
	}
	if a, _, _ := m1.Get(ctx, list[0].ID); a.State != StateResolved {
		t.Errorf("resolved through m2: %+v", a)
	}
}

// A manager that does not lead dispatches nothing and forgets its group
// timing; leading again, it sends only what the alerts' notified times say
// is due.
func TestLeaderOnlyDispatches(t *testing.T) {
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(t0)
	route := techsRoute(t)
	store := NewMemStore()
	var mu sync.Mutex
	leads := map[*Manager]bool{}
	mk := func() *Manager {
		var m *Manager
		m = newTestManager(t, clock, Options{Store: store, Route: route, Shared: true, Leader: func() bool {
			mu.Lock()
			defer mu.Unlock()
			return leads[m]
		}})
		return m
	}
	m1, m2 := mk(), mk()
	leads[m1] = true
	if err := m2.Raise(ctx, offline("s1", "kp-1")); err != nil {
		t.Fatal(err)
	}
	m2.Flush(ctx)
	m1.Flush(ctx) // the group wait starts
	clock.Advance(2 * time.Minute)
	m2.Flush(ctx)
	m1.Flush(ctx)
	if n2, n1 := len(drain(m2)), len(drain(m1)); n2 != 0 || n1 != 1 {
		t.Fatalf("notices: follower %d, leader %d; want 0 and 1", n2, n1)
	}
	// The lease moves to m2 within the repeat interval: nothing is due.
	mu.Lock()
	leads[m1], leads[m2] = false, true
	mu.Unlock()
	clock.Advance(10 * time.Minute)
	m1.Flush(ctx)
	m2.Flush(ctx)
	if n := len(drain(m2)); n != 0 {
		t.Fatalf("the new leader sent %d notices before the repeat interval", n)
	}
	clock.Advance(time.Hour)
	m2.Flush(ctx)
	if n := len(drain(m2)); n != 1 {
		t.Fatalf("the new leader sent %d repeats after the interval, want 1", n)
	}
}

func newSharedManager(t *testing.T, clock *clockwork.FakeClock, store Store, route *Route) *Manager {
	t.Helper()
	return newTestManager(t, clock, Options{Store: store, Route: route, Shared: true})
}

// racyStore runs after, once, right after a reload has read the open
// alerts: what another replica does while this one holds a stale copy.
type racyStore struct {
	*MemStore
	after func()
}

func (r *racyStore) OpenAlerts(ctx context.Context) ([]Alert, error) {
	list, err := r.MemStore.OpenAlerts(ctx)
	if f := r.after; f != nil {
		r.after = nil
		f()
	}
	return list, err
}

// While the schedule's lease moves, two replicas may both lead for one
// tick. The one that loaded the alerts before the other sent their notice
// must not send it again: its claim in the store fails.
func TestHandoverNotifiesOnce(t *testing.T) {
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(t0)
	route := techsRoute(t)
	store := NewMemStore()
	racy := &racyStore{MemStore: store}
	m1 := newSharedManager(t, clock, store, route)
	m2 := newSharedManager(t, clock, racy, route)
	for _, dev := range []string{"kp-1", "kp-2"} {
		if err := m1.Raise(ctx, offline("s1", dev)); err != nil {
			t.Fatal(err)
		}
	}
	m1.Flush(ctx) // both start the group wait
	m2.Flush(ctx)
	clock.Advance(2 * time.Minute)
	racy.after = func() { m1.Flush(ctx) } // replica 1 sends while replica 2 holds what it loaded
	m2.Flush(ctx)
	n1, n2 := drain(m1), drain(m2)
	if len(n1) != 1 || len(n2) != 0 {
		t.Fatalf("replica 1 sent %d notices, replica 2 %d; want the group once, by replica 1", len(n1), len(n2))
	}
	// Next ticks: nothing until the repeat interval, from either.
	clock.Advance(time.Minute)
	m1.Flush(ctx)
	m2.Flush(ctx)
	if n := len(drain(m1)) + len(drain(m2)); n != 0 {
		t.Errorf("%d notices a minute later, want none before the repeat interval", n)
	}
	clock.Advance(time.Hour)
	m2.Flush(ctx)
	m1.Flush(ctx)
	if n1, n2 := drain(m1), drain(m2); len(n1)+len(n2) != 1 {
		t.Errorf("after the repeat interval: %d + %d notices, want one repeat", len(n1), len(n2))
	}
}

// techsRoute sends everything to one receiver, a minute's group wait and
// an hour's repeat.
func techsRoute(t *testing.T) *Route {
	t.Helper()
	route, err := NewRoute(RouteConfig{Receivers: []string{"techs"}, GroupWait: time.Minute, RepeatInterval: time.Hour},
		map[string]Receiver{"techs": {Name: "techs"}})
	if err != nil {
		t.Fatal(err)
	}
	return route
}
