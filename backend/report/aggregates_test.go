package report

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/aggregate"
	"github.com/semko/semko/internal/influxdb"
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
		counted := &countingQuerier{Querier: fx.db}
		aggB := &Builder{DB: counted, Now: func() time.Time { return now }, Aggregates: true, RawUpTo: time.Hour, AggregatedUntil: job.Done}
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
				counted.reads = nil
				b, err := aggB.Build(ctx, r)
				if err != nil {
					t.Fatal(err)
				}
				name := string(p.Kind) + " " + p.Start.Format(time.DateOnly) + " " + r.Org + "/" + r.Site + " at " + now.Format(time.RFC3339)
				// Whole days of an organisation's or a site's report come from
				// the report tier, each read once, a week at most at a time;
				// an operator's or a service's never do (the tier has
				// neither).
				var wantDays time.Duration
				if r.Operator == "" && r.Service == "" {
					for _, pc := range aggB.pieces(p.Start, earlierTime(p.End, now), daily, byOrg) {
						if pc.g == daily {
							wantDays += pc.to.Sub(pc.from)
						}
					}
				}
				if got := counted.covered(reportMeasurement, p.Start, earlierTime(p.End, now)); got != wantDays {
					t.Errorf("%s: the report tier's reads cover %s of the period, want %s once\n%s", name, got, wantDays, strings.Join(counted.reads, "\n"))
				}
				if counted.longest(reportMeasurement) > reportChunk {
					t.Errorf("%s: a read of the report tier longer than %s:\n%s", name, reportChunk, strings.Join(counted.reads, "\n"))
				}
				if wantDays > 0 && counted.longest("_1h") >= 24*time.Hour {
					t.Errorf("%s: whole days of hourly aggregates read beside the report tier:\n%s", name, strings.Join(counted.reads, "\n"))
				}
				// A period over for a day reads no raw points of an
				// organisation or a site: its edges are in the report tier.
				if r.Operator == "" && r.Service == "" && !now.Before(p.End.Add(25*time.Hour)) {
					for _, q := range counted.reads {
						if a, b := stmtSpan(q); (strings.Contains(q, `FROM "vote" `) || strings.Contains(q, `FROM "activation" `)) &&
							b.After(p.Start) && a.Before(p.End) {
							t.Errorf("%s: raw points read over a settled period: %s", name, q)
						}
					}
				}
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

// countingQuerier keeps the statements it runs.
// Build reads the report tier's chunks concurrently.
type countingQuerier struct {
	Querier
	mu    sync.Mutex
	reads []string
}

func (c *countingQuerier) Query(ctx context.Context, stmt string) ([]influxdb.Series, error) {
	c.mu.Lock()
	c.reads = append(c.reads, stmt)
	c.mu.Unlock()
	return c.Querier.Query(ctx, stmt)
}

// stmtSpan is the time range a statement reads.
func stmtSpan(q string) (from, to time.Time) {
	_, rest, _ := strings.Cut(q, "time >= '")
	lo, rest, _ := strings.Cut(rest, "' AND time < '")
	hi, _, _ := strings.Cut(rest, "'")
	from, _ = time.Parse(time.RFC3339Nano, lo)
	to, _ = time.Parse(time.RFC3339Nano, hi)
	return from, to
}

// covered is the time the statements reading measurement m (a part of its
// name) within [from, to) cover, counted as often as it is read.
func (c *countingQuerier) covered(m string, from, to time.Time) time.Duration {
	var d time.Duration
	for _, q := range c.reads {
		if a, b := stmtSpan(q); strings.Contains(q, m) && !a.Before(from) && !b.After(to) {
			d += b.Sub(a)
		}
	}
	return d
}

// longest is the longest range read from measurement m (a part of its
// name).
func (c *countingQuerier) longest(m string) time.Duration {
	var d time.Duration
	for _, q := range c.reads {
		if a, b := stmtSpan(q); strings.Contains(q, m) {
			d = max(d, b.Sub(a))
		}
	}
	return d
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

// An hour with votes or closed activations is busy where it lies; one
// that straddles a bound is busy on both sides.
func TestDayFoldBusy(t *testing.T) {
	day := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	at := func(h int) int64 { return day.Add(time.Duration(h) * time.Hour).UnixNano() }
	f := &dayFold{hours: map[int64]*[6]int64{
		at(6):  {3, 12, 2, 0, 4, 3}, // votes
		at(15): {0, 0, 0, 0, 2, 0},  // closed activations, none answered
		at(23): {},                  // nothing
	}}
	for _, c := range []struct {
		from, to        time.Duration
		inside, outside bool
	}{
		{22 * time.Hour, 24 * time.Hour, false, true},              // the night before a Sofia morning
		{0, 22 * time.Hour, true, false},                           // a Sofia day's UTC part
		{0, 10 * time.Hour, true, true},                            // an afternoon outside
		{6*time.Hour + 30*time.Minute, 24 * time.Hour, true, true}, // a half hour splits 06:00
		{16 * time.Hour, 24 * time.Hour, false, true},
	} {
		in, out := f.busy(day.Add(c.from), day.Add(c.to))
		if in != c.inside || out != c.outside {
			t.Errorf("[%s, %s): inside %v outside %v, want %v %v", c.from, c.to, in, out, c.inside, c.outside)
		}
	}
}
