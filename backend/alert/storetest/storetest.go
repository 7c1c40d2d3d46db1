// Package storetest checks that an alert.Store behaves as the manager
// expects; every implementation runs it in its tests.
package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/semko/semko/backend/alert"
)

// Run exercises a fresh store from open.
func Run(t *testing.T, open func(t *testing.T) alert.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	s := open(t)

	a := alert.Alert{Kind: alert.KindOffline, Severity: alert.SeverityWarning, State: alert.StateFiring,
		Subject: alert.Subject{Org: "o1", Site: "s1", Device: "kp-1"}, Count: 1, StartsAt: t0, UpdatedAt: t0,
		Details: map[string]string{"score": "1"}}
	ev := alert.Event{Time: t0, Action: alert.ActionRaised, State: alert.StateFiring}
	if err := s.Save(ctx, &a, &ev); err != nil {
		t.Fatal(err)
	}
	if a.ID == 0 || ev.AlertID != a.ID || ev.ID == 0 {
		t.Fatalf("ids not assigned: alert %d, event %d/%d", a.ID, ev.ID, ev.AlertID)
	}
	b := alert.Alert{Kind: alert.KindStuckKey, Severity: alert.SeverityCritical, State: alert.StateFiring,
		Subject: alert.Subject{Org: "o1", Site: "s2", Device: "kp-2"}, UpdatedAt: t0.Add(time.Minute)}
	if err := s.Save(ctx, &b, nil); err != nil {
		t.Fatal(err)
	}
	a.State, a.UpdatedAt, a.ResolvedAt = alert.StateResolved, t0.Add(2*time.Minute), t0.Add(2*time.Minute)
	ev2 := alert.Event{Time: a.UpdatedAt, Action: alert.ActionResolved, State: alert.StateResolved, Actor: "tech", Comment: "fixed"}
	if err := s.Save(ctx, &a, &ev2); err != nil {
		t.Fatal(err)
	}

	got, err := s.Alert(ctx, a.ID)
	if err != nil || got.State != alert.StateResolved || got.Details["score"] != "1" || !got.ResolvedAt.Equal(a.ResolvedAt) {
		t.Fatalf("Alert = %+v, %v", got, err)
	}
	if _, err := s.Alert(ctx, 999); !errors.Is(err, alert.ErrNotFound) {
		t.Errorf("missing alert: err = %v, want ErrNotFound", err)
	}
	ghost := alert.Alert{ID: 999}
	if err := s.Save(ctx, &ghost, nil); !errors.Is(err, alert.ErrNotFound) {
		t.Errorf("update missing alert: err = %v, want ErrNotFound", err)
	}
	open1, err := s.OpenAlerts(ctx)
	if err != nil || len(open1) != 1 || open1[0].ID != b.ID {
		t.Fatalf("OpenAlerts = %+v, %v", open1, err)
	}
	filters := []struct {
		f    alert.Filter
		want []int64
	}{
		{alert.Filter{}, []int64{a.ID, b.ID}},
		{alert.Filter{State: "open"}, []int64{b.ID}},
		{alert.Filter{State: "resolved"}, []int64{a.ID}},
		{alert.Filter{Kind: alert.KindStuckKey}, []int64{b.ID}},
		{alert.Filter{Severity: alert.SeverityWarning}, []int64{a.ID}},
		{alert.Filter{Site: "s1"}, []int64{a.ID}},
		{alert.Filter{Device: "kp-2"}, []int64{b.ID}},
		{alert.Filter{Org: "o2"}, nil},
		{alert.Filter{Since: t0.Add(90 * time.Second)}, []int64{a.ID}},
		{alert.Filter{Limit: 1}, []int64{a.ID}},
	}
	for _, tt := range filters {
		list, err := s.Alerts(ctx, tt.f)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, x := range list {
			ids = append(ids, x.ID)
		}
		if len(ids) != len(tt.want) || (len(ids) > 0 && (ids[0] != tt.want[0] || ids[len(ids)-1] != tt.want[len(tt.want)-1])) {
			t.Errorf("Alerts(%+v) = %v, want %v (newest first)", tt.f, ids, tt.want)
		}
	}
	evs, err := s.Events(ctx, a.ID)
	if err != nil || len(evs) != 2 || evs[0].Action != alert.ActionRaised || evs[1].Actor != "tech" {
		t.Fatalf("Events = %+v, %v", evs, err)
	}

	sl := alert.Silence{ID: "s-1", Matchers: alert.Matchers{"site": "s1"}, StartsAt: t0, EndsAt: t0.Add(time.Hour), CreatedBy: "ops"}
	if err := s.SaveSilence(ctx, sl); err != nil {
		t.Fatal(err)
	}
	sls, err := s.Silences(ctx)
	if err != nil || len(sls) != 1 || sls[0].Matchers["site"] != "s1" || !sls[0].EndsAt.Equal(sl.EndsAt) {
		t.Fatalf("Silences = %+v, %v", sls, err)
	}
	if err := s.DeleteSilence(ctx, "s-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSilence(ctx, "s-1"); !errors.Is(err, alert.ErrNotFound) {
		t.Errorf("delete twice: err = %v, want ErrNotFound", err)
	}
	t.Run("Update", func(t *testing.T) { runUpdate(t, open(t)) })
}

// runUpdate checks alert.Updater on a fresh store: by key it finds the open
// alert of exactly that kind and subject (counter and operator included);
// by id any alert; nothing is written when fn declines or fails; and
// concurrent updates of one key, by key and by id, lose none and open one
// alert.
func runUpdate(t *testing.T, s alert.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	u, ok := s.(alert.Updater)
	if !ok {
		t.Fatalf("%T is not an alert.Updater", s)
	}
	counter := func(c string) alert.Subject { return alert.Subject{Org: "o1", Site: "s1", Counter: c} }
	byKey := func(c string) alert.Which { return alert.Which{Kind: alert.KindNegativeVote, Subject: counter(c)} }
	// raise inserts the open alert of counter c or counts it once more.
	raise := func(w alert.Which) error {
		return u.Update(ctx, w, func(cur *alert.Alert) (*alert.Alert, *alert.Event, error) {
			if cur == nil {
				if w.ID != 0 {
					return nil, nil, alert.ErrNotFound
				}
				a := &alert.Alert{Kind: w.Kind, Subject: w.Subject, Severity: alert.SeverityWarning, State: alert.StateFiring, Count: 1, UpdatedAt: t0}
				return a, &alert.Event{Time: t0, Action: alert.ActionRaised, State: alert.StateFiring}, nil
			}
			cur.Count++
			return cur, nil, nil
		})
	}
	if err := raise(byKey("c1")); err != nil {
		t.Fatal(err)
	}
	if err := raise(byKey("c2")); err != nil { // same kind, site and device (none); another counter
		t.Fatal(err)
	}
	open, err := s.OpenAlerts(ctx)
	if err != nil || len(open) != 2 {
		t.Fatalf("two counters: open %+v, %v; want two alerts", open, err)
	}
	var first alert.Alert
	for _, a := range open {
		if a.Subject.Counter == "c1" {
			first = a
		}
	}
	if first.ID == 0 || first.Count != 1 {
		t.Fatalf("c1's alert %+v", first)
	}
	if evs, err := s.Events(ctx, first.ID); err != nil || len(evs) != 1 || evs[0].AlertID != first.ID {
		t.Fatalf("c1's events %+v, %v; want the raise", evs, err)
	}

	// Declining or failing writes nothing.
	boom := errors.New("boom")
	if err := u.Update(ctx, byKey("c1"), func(cur *alert.Alert) (*alert.Alert, *alert.Event, error) {
		cur.Count = 99
		return cur, nil, boom
	}); !errors.Is(err, boom) {
		t.Errorf("fn's error: got %v", err)
	}
	if err := u.Update(ctx, alert.Which{ID: first.ID}, func(cur *alert.Alert) (*alert.Alert, *alert.Event, error) {
		if cur == nil || cur.ID != first.ID || cur.Subject.Counter != "c1" {
			t.Errorf("by id: cur = %+v", cur)
		}
		return nil, nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Alert(ctx, first.ID); got.Count != 1 {
		t.Errorf("count %d after a failed and a declined update, want 1", got.Count)
	}
	if err := u.Update(ctx, alert.Which{ID: 9999}, func(cur *alert.Alert) (*alert.Alert, *alert.Event, error) {
		if cur != nil {
			t.Errorf("unknown id: cur = %+v", cur)
		}
		return nil, nil, nil
	}); err != nil {
		t.Fatal(err)
	}

	// Concurrent updates of one alert, half by key and half by id.
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		w := byKey("c1")
		if i%2 == 1 {
			w = alert.Which{ID: first.ID}
		}
		wg.Go(func() { errs <- raise(w) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.Alert(ctx, first.ID); got.Count != 1+n {
		t.Errorf("count %d after %d concurrent updates, want %d", got.Count, n, 1+n)
	}

	// Resolved, the alert is found by id but not by key: the next raise of
	// the key inserts a new one.
	if err := u.Update(ctx, alert.Which{ID: first.ID}, func(cur *alert.Alert) (*alert.Alert, *alert.Event, error) {
		cur.State = alert.StateResolved
		return cur, &alert.Event{Time: t0, Action: alert.ActionResolved, State: alert.StateResolved}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := u.Update(ctx, alert.Which{ID: first.ID}, func(cur *alert.Alert) (*alert.Alert, *alert.Event, error) {
		if cur == nil || cur.State != alert.StateResolved {
			t.Errorf("resolved, by id: cur = %+v", cur)
		}
		return nil, nil, nil
	}); err != nil {
		t.Fatal(err)
	}

	// Concurrent raises of a new key open one alert.
	wg = sync.WaitGroup{}
	for range n {
		wg.Go(func() {
			if err := raise(byKey("c1")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	list, err := s.Alerts(ctx, alert.Filter{State: "open", Kind: alert.KindNegativeVote, Site: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	var again []alert.Alert
	for _, a := range list {
		if a.Subject.Counter == "c1" {
			again = append(again, a)
		}
	}
	if len(again) != 1 || again[0].Count != n || again[0].ID == first.ID {
		t.Errorf("%d concurrent raises after the resolve: %+v, want one new alert counted %d times", n, again, n)
	}
}
