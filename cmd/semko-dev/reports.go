package main

import (
	"context"
	"fmt"
	"time"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/report"
	"github.com/semko/semko/backend/report/delivery"
	"github.com/semko/semko/firmware-sim/fleet"
)

// subscribeWeekly subscribes a manager of the first organisation to its
// weekly PDF report, once per var directory: the delivery job then sends
// last week's report to the mail sink as the run starts (and every Monday
// at 07:00 while it runs).
func subscribeWeekly(ctx context.Context, app *backend.App, model *fleet.Model) error {
	store := app.ReportSubscriptions()
	if store == nil || len(model.Orgs) == 0 {
		return nil
	}
	org := model.Orgs[0].ID
	subs, err := store.Subscriptions(ctx)
	if err != nil {
		return fmt.Errorf("report subscriptions: %w", err)
	}
	for _, s := range subs {
		if s.Account == "dev-manager" {
			return nil
		}
	}
	s := delivery.Subscription{
		Account: "dev-manager", Scope: access.Scope{Orgs: []string{org}}, Org: org,
		Period: report.Week, Format: "pdf", Lang: "bg", Recipients: []string{"Управител <manager@" + org + ".example>"},
		Created: time.Now(),
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("report subscription: %w", err)
	}
	if err := store.Subscribe(ctx, &s); err != nil {
		return fmt.Errorf("report subscription: %w", err)
	}
	return nil
}
