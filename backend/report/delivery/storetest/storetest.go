// Package storetest checks that a delivery.Store behaves as the delivery
// job expects; every implementation runs it in its tests.
package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/report"
	"github.com/semko/semko/backend/report/delivery"
)

// Run exercises a fresh store from open; reopen, when not nil, opens the
// same store again (a restart) and must find everything.
func Run(t *testing.T, open func(t *testing.T) delivery.Store, reopen func(t *testing.T) delivery.Store) {
	ctx := context.Background()
	s := open(t)
	if subs, err := s.Subscriptions(ctx); err != nil || len(subs) != 0 {
		t.Fatalf("fresh store: %v, %v", subs, err)
	}
	a := delivery.Subscription{Account: "maria", Scope: access.Scope{Orgs: []string{"bank"}}, Org: "bank", Site: "b-north",
		Period: report.Week, Format: "pdf", Lang: "bg", Recipients: []string{"Мария <maria@example.org>", "boss@example.org"},
		Created: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	b := delivery.Subscription{Account: "ivan", Scope: access.Everything, Period: report.Month, Format: "xlsx", Lang: "en",
		Recipients: []string{"ivan@example.org"}}
	for _, sub := range []*delivery.Subscription{&a, &b} {
		if err := s.Subscribe(ctx, sub); err != nil {
			t.Fatal(err)
		}
	}
	if a.ID == 0 || b.ID == 0 || a.ID == b.ID {
		t.Fatalf("ids %d and %d", a.ID, b.ID)
	}
	subs, err := s.Subscriptions(ctx)
	if err != nil || len(subs) != 2 {
		t.Fatalf("subscriptions %v, %v", subs, err)
	}
	got := subs[0]
	if got.ID != a.ID || got.Account != "maria" || got.Site != "b-north" || !slices.Equal(got.Recipients, a.Recipients) ||
		!slices.Equal(got.Scope.Orgs, []string{"bank"}) || !got.Created.Equal(a.Created) || got.Lang != "bg" {
		t.Errorf("stored %+v, want %+v", got, a)
	}

	week := time.Date(2026, 11, 23, 0, 0, 0, 0, time.FixedZone("EET", 2*3600))
	if _, ok, err := s.Delivery(ctx, a.ID, week); ok || err != nil {
		t.Fatalf("delivery before any: %v, %v", ok, err)
	}
	fail := delivery.Delivery{Subscription: a.ID, PeriodStart: week, Status: delivery.StatusFailed, Attempts: 1,
		LastError: "smtp connect: refused", At: week.Add(7 * 24 * time.Hour)}
	if err := s.Record(ctx, fail); err != nil {
		t.Fatal(err)
	}
	sent := fail
	sent.Status, sent.Attempts, sent.LastError, sent.At = delivery.StatusSent, 2, "", fail.At.Add(time.Minute)
	if err := s.Record(ctx, sent); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(ctx, delivery.Delivery{Subscription: a.ID, PeriodStart: week.AddDate(0, 0, -7), Status: delivery.StatusSent,
		Attempts: 1, At: week}); err != nil {
		t.Fatal(err)
	}
	if reopen != nil {
		s = reopen(t)
	}
	d, ok, err := s.Delivery(ctx, a.ID, week)
	if err != nil || !ok || d.Status != delivery.StatusSent || d.Attempts != 2 || !d.At.Equal(sent.At) || !d.PeriodStart.Equal(week) {
		t.Errorf("delivery %+v %v %v, want %+v (one record per period, replaced)", d, ok, err, sent)
	}
	list, err := s.Deliveries(ctx, a.ID)
	if err != nil || len(list) != 2 || !list[0].PeriodStart.Before(list[1].PeriodStart) {
		t.Errorf("deliveries %+v, %v", list, err)
	}
	if list, _ := s.Deliveries(ctx, b.ID); len(list) != 0 {
		t.Errorf("b has deliveries %+v", list)
	}
	if err := s.Unsubscribe(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Unsubscribe(ctx, a.ID); !errors.Is(err, delivery.ErrNotFound) {
		t.Errorf("second unsubscribe: %v", err)
	}
	if subs, _ := s.Subscriptions(ctx); len(subs) != 1 || subs[0].ID != b.ID {
		t.Errorf("after unsubscribe %+v", subs)
	}
	if list, _ := s.Deliveries(ctx, a.ID); len(list) != 0 {
		t.Errorf("deliveries outlive their subscription: %+v", list)
	}
}
