// Package storetest checks that an alert.Store behaves as the manager
// expects; every implementation runs it in its tests.
package storetest

import (
	"context"
	"errors"
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
}
