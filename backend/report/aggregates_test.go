package report

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/aggregate"
)

// A report read from the aggregates equals the one read from raw points,
// for whole periods, a custom range and today so far (a running hour).
func TestAggregatesGiveTheSameReport(t *testing.T) {
	fx := seedFixture(t)
	ctx := context.Background()
	srvURL, bucket := fx.url, "semko"
	for _, now := range []time.Time{
		weekStart.AddDate(0, 0, 9),
		weekStart.AddDate(0, 0, 3).Add(14*time.Hour + 37*time.Minute), // Thursday afternoon
	} {
		job, err := aggregate.New(aggregate.Options{URL: srvURL, Bucket: bucket, StateFile: filepath.Join(t.TempDir(), "agg.json"),
			Clock: clockwork.NewFakeClockAt(now)})
		if err != nil {
			t.Fatal(err)
		}
		if err := job.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		_ = job.Close()
		rawB := &Builder{DB: fx.db, Now: func() time.Time { return now }}
		aggB := &Builder{DB: fx.db, Now: func() time.Time { return now }, Aggregates: true, RawUpTo: time.Hour, AggregatedUntil: job.Done}
		custom, err := CustomPeriod(weekStart.AddDate(0, 0, -6), weekStart.AddDate(0, 0, 4), sofia)
		if err != nil {
			t.Fatal(err)
		}
		var periods []Period
		for _, k := range []Kind{Week, Month, Today} {
			day := weekStart.Add(60 * time.Hour) // a day with votes; today is now
			if k == Today {
				day = now
			}
			p, err := NewPeriod(k, day, sofia)
			if err != nil {
				t.Fatal(err)
			}
			periods = append(periods, p)
		}
		periods = append(periods, custom)
		for _, p := range periods {
			// The aggregates are really read (not the raw fallback).
			used := map[grain]bool{}
			for _, pc := range aggB.pieces(p.Start, earlierTime(p.End, now), hourly, byOrg) {
				used[pc.g] = true
			}
			if p.Kind != Today && !used[hourly] {
				t.Errorf("%s %s: hourly aggregates not read", p.Kind, p.Start)
			}
			for _, r := range []Request{
				{Org: "bank", Period: p, Lang: "en", Caller: access.Scope{Orgs: []string{"bank"}}},
				{Org: "bank", Site: "b-north", Operator: "op-ana", Period: p, Lang: "en", Caller: access.Everything},
				{Period: p, Lang: "en", Caller: access.Everything},
				{Org: "bank", Site: "b-south", Period: p, Lang: "en", Caller: access.Everything},
				{Org: "bank", Service: "passport", Period: p, Lang: "en", Caller: access.Everything},
			} {
				a, err := rawB.Build(ctx, r)
				if err != nil {
					t.Fatal(err)
				}
				b, err := aggB.Build(ctx, r)
				if err != nil {
					t.Fatal(err)
				}
				name := string(p.Kind) + " " + p.Start.Format(time.DateOnly) + " " + r.Org + "/" + r.Site + " at " + now.Format(time.RFC3339)
				if a.Totals.Votes == 0 && p.Start.Before(weekStart.AddDate(0, 0, 8)) {
					t.Errorf("%s: no votes, nothing compared", name)
				}
				for _, c := range []struct {
					what     string
					raw, agg any
				}{
					{"totals", a.Totals, b.Totals}, {"previous", a.Prev, b.Prev}, {"scores", a.Scores, b.Scores},
					{"sites", a.Sites, b.Sites}, {"operators", a.Ops, b.Ops}, {"days", a.Daily, b.Daily},
					{"hour of week", a.HourMap, b.HourMap},
				} {
					if !reflect.DeepEqual(c.raw, c.agg) {
						t.Errorf("%s: %s differ\n raw %+v\n agg %+v", name, c.what, c.raw, c.agg)
					}
				}
			}
		}
	}
}

func earlierTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Each scope reads the coarsest tier that holds its filter and grouping.
func TestTierFor(t *testing.T) {
	for _, c := range []struct {
		r           Request
		ops, totals tier
	}{
		{Request{}, byOperator, byOrg},
		{Request{Org: "bank"}, byOperator, byOrg},
		{Request{Org: "bank", Site: "b-north"}, byOperator, bySite},
		{Request{Org: "bank", Operator: "op-ana"}, byOperator, byOperator},
		{Request{Org: "bank", Site: "b-north", Service: "passport"}, fine, fine},
	} {
		if got := c.r.tierFor(true); got != c.ops {
			t.Errorf("%+v grouped by operator: tier %d, want %d", c.r, got, c.ops)
		}
		if got := c.r.tierFor(false); got != c.totals {
			t.Errorf("%+v: tier %d, want %d", c.r, got, c.totals)
		}
		p := piece{g: daily, t: c.totals}
		if want := `"vote` + c.totals.infix() + `_1d"`; p.vote() != want {
			t.Errorf("measurement %s, want %s", p.vote(), want)
		}
	}
}
