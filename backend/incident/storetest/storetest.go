// Package storetest checks that an incident.Store behaves as the desk
// expects; every implementation runs it in its tests.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/incident"
)

// Run exercises a fresh store from open.
func Run(t *testing.T, open func(t *testing.T) incident.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	s := open(t)

	mk := func(org, site, dept string, due time.Time) incident.Incident {
		in := incident.Incident{Org: org, Site: site, Department: dept, Channel: incident.ChannelWebForm, Type: incident.TypeService,
			State: incident.StateRegistered, CustomerName: "Мария Петрова", Description: "<b>slow</b>", CreatedAt: t0, UpdatedAt: t0, DueAt: due,
			Attachments: []incident.Attachment{{Hash: "ab", Name: "scan.png", Type: "image/png", Size: 10, Width: 800, Height: 900}}}
		st := incident.Step{Time: t0, Action: incident.ActionRegistered, State: incident.StateRegistered, Actor: "ivan", Comment: "new"}
		if err := s.Create(ctx, &in, &st); err != nil {
			t.Fatal(err)
		}
		if in.ID == 0 || st.ID == 0 || st.IncidentID != in.ID {
			t.Fatalf("ids not assigned: incident %d, step %d/%d", in.ID, st.ID, st.IncidentID)
		}
		return in
	}
	a := mk("shop", "mall", "retail", t0.Add(3*time.Hour))
	b := mk("shop", "centre", "services", t0.Add(time.Hour))
	c := mk("bank", "west", "retail", t0.Add(2*time.Hour))

	got, err := s.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.CustomerName != a.CustomerName || got.Description != a.Description || len(got.Attachments) != 1 ||
		got.Attachments[0].Width != 800 || !got.DueAt.Equal(a.DueAt) {
		t.Fatalf("round trip lost fields: %+v", got)
	}
	if _, err := s.Get(ctx, 9999); !errors.Is(err, incident.ErrNotFound) {
		t.Fatalf("missing incident: %v, want ErrNotFound", err)
	}

	// Save replaces and appends to the trail, in order.
	a.State, a.PassedTo = incident.StatePassed, "maria"
	st := incident.Step{Time: t0.Add(time.Minute), Action: incident.ActionPassed, State: incident.StatePassed, Actor: "cs", To: "maria", Comment: "please call"}
	if err := s.Save(ctx, &a, &st); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, &a, nil); err != nil {
		t.Fatal(err)
	}
	trail, err := s.Trail(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(trail) != 2 || trail[0].Action != incident.ActionRegistered || trail[1].To != "maria" || trail[1].ID <= trail[0].ID {
		t.Fatalf("trail %+v", trail)
	}
	ghost := incident.Incident{ID: 9999, Org: "x", Site: "y"}
	if err := s.Save(ctx, &ghost, nil); !errors.Is(err, incident.ErrNotFound) {
		t.Fatalf("save of a missing incident: %v, want ErrNotFound", err)
	}

	// Scope: orgs, sites, everything, nothing.
	ids := func(f incident.Filter) []int64 {
		t.Helper()
		l, err := s.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, in := range l {
			out = append(out, in.ID)
		}
		return out
	}
	eq := func(name string, got []int64, want ...int64) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: got %v, want %v", name, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: got %v, want %v", name, got, want)
			}
		}
	}
	eq("everything, newest first", ids(incident.Filter{Scope: access.Everything}), c.ID, b.ID, a.ID)
	eq("org", ids(incident.Filter{Scope: access.Scope{Orgs: []string{"shop"}}}), b.ID, a.ID)
	eq("site", ids(incident.Filter{Scope: access.Scope{Sites: []string{"west"}}}), c.ID)
	eq("empty scope", ids(incident.Filter{}))
	eq("state", ids(incident.Filter{Scope: access.Everything, State: incident.StatePassed}), a.ID)
	eq("department", ids(incident.Filter{Scope: access.Everything, Department: "retail"}), c.ID, a.ID)
	eq("limit", ids(incident.Filter{Scope: access.Everything, Limit: 1}), c.ID)
	eq("site", ids(incident.Filter{Scope: access.Everything, Site: "mall"}), a.ID)
	eq("site outside the scope", ids(incident.Filter{Scope: access.Scope{Orgs: []string{"bank"}}, Site: "mall"}))
	b.Type = incident.TypeThanks
	if err := s.Save(ctx, &b, nil); err != nil {
		t.Fatal(err)
	}
	eq("type", ids(incident.Filter{Scope: access.Everything, Type: incident.TypeService}), c.ID, a.ID)
	eq("other type", ids(incident.Filter{Scope: access.Everything, Type: incident.TypeThanks}), b.ID)
	eq("type and site", ids(incident.Filter{Scope: access.Everything, Type: incident.TypeThanks, Site: "mall"}))

	// Due: open, not overdue, deadline reached; oldest deadline first.
	due, err := s.Due(ctx, t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 2 || due[0].ID != b.ID || due[1].ID != c.ID {
		t.Fatalf("due: %+v", due)
	}
	b.Overdue = true
	c.State, c.ClosedAt = incident.StateClosed, t0.Add(90*time.Minute)
	if err := s.Save(ctx, &b, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, &c, nil); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.Due(ctx, t0.Add(24*time.Hour)); len(due) != 1 || due[0].ID != a.ID {
		t.Fatalf("due after overdue and close: %+v", due)
	}
	eq("open", ids(incident.Filter{Scope: access.Everything, Open: true}), b.ID, a.ID)

	// Personal: closed before t and still holding a name.
	if p, _ := s.Personal(ctx, t0.Add(time.Hour)); len(p) != 0 {
		t.Fatalf("personal before the close: %+v", p)
	}
	if p, _ := s.Personal(ctx, t0.Add(2*time.Hour)); len(p) != 1 || p[0].ID != c.ID {
		t.Fatalf("personal: %+v", p)
	}
	c.CustomerName = ""
	if err := s.Save(ctx, &c, nil); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Personal(ctx, t0.Add(2*time.Hour)); len(p) != 0 {
		t.Fatalf("personal after purge: %+v", p)
	}
}
