package rollup

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/internal/influxdb"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/testwait"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// seed writes line protocol to the test server (1.8 /write, ns precision).
func seed(t *testing.T, srv *influxlocal.Server, lines []string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
		srv.URL()+"/write?db="+srv.Database(), strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("seed write: HTTP %s", resp.Status)
	}
}

func vote(org, site, counter, operator string, score int, valid bool, scale string, at time.Time) string {
	sat, neg := 0, 0
	if (scale == "nps11" && score >= 9) || (scale != "nps11" && score >= 4) {
		sat = 1
	}
	if (scale == "nps11" && score <= 6) || (scale != "nps11" && score <= 2) {
		neg = 1
	}
	tags := fmt.Sprintf("org=%s,site=%s,counter=%s,device=kp-%s,service=passport,channel=keypad,valid=%t", org, site, counter, counter, valid)
	if operator != "" {
		tags += ",operator=" + operator
	}
	if scale == "nps11" {
		tags += ",scale=nps11"
	}
	return fmt.Sprintf("vote,%s score=%di,satisfied=%di,negative=%di %d", tags, score, sat, neg, at.UnixNano())
}

func activation(org, site, counter, operator string, voted bool, at time.Time) string {
	v := 0
	if voted {
		v = 1
	}
	return fmt.Sprintf("activation,org=%s,site=%s,counter=%s,device=kp-%s,service=passport,operator=%s voted=%di,closed=1i %d",
		org, site, counter, counter, operator, v, at.UnixNano())
}

// fleet seeds a small known population and returns it.
//
//	a/s1/c1 op1: 3 votes, all 5           (small and perfect)
//	a/s1/c2 op2: 30 votes, 24 satisfied   (large and good), 40 activations
//	b/s2/c3 op3: 10 votes, 4 satisfied, + 3 NPS answers (9, 10, 3)
//	noise: an invalid vote, and a vote older than the window
func fleet(t *testing.T, srv *influxlocal.Server) {
	var lines []string
	at := func(i int) time.Time { return t0.Add(-time.Duration(i+1) * time.Minute) }
	for i := range 3 {
		lines = append(lines, vote("a", "s1", "c1", "op1", 5, true, "csat5", at(i)))
	}
	for i := range 30 {
		score := 4
		if i >= 24 {
			score = 2
		}
		lines = append(lines, vote("a", "s1", "c2", "op2", score, true, "csat5", at(i)))
	}
	for i := range 40 {
		lines = append(lines, activation("a", "s1", "c2", "op2", i < 30, at(i)))
	}
	for i := range 10 {
		score := 1
		if i < 4 {
			score = 5
		}
		lines = append(lines, vote("b", "s2", "c3", "op3", score, true, "csat5", at(i)))
	}
	for i, s := range []int{9, 10, 3} {
		lines = append(lines, vote("b", "s2", "c3", "op3", s, true, "nps11", at(100+i)))
	}
	lines = append(lines,
		vote("b", "s2", "c3", "op3", 1, false, "csat5", at(200)),
		vote("b", "s2", "c3", "op3", 1, true, "csat5", t0.Add(-31*24*time.Hour)),
	)
	seed(t, srv, lines)
}

func TestRunOnceAgainstInfluxDB(t *testing.T) {
	srv := influxlocal.StartForTest(t)
	fleet(t, srv)
	reg := prometheus.NewRegistry()
	job, err := New(Options{URL: srv.URL(), Bucket: srv.Database(), Window: 30 * 24 * time.Hour,
		PriorWeight: 20, Clock: clockwork.NewFakeClockAt(t0), Registerer: reg, Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	if err := job.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}

	// Computed here independently of compute(): 31 of 43 votes satisfied.
	prior := 31.0 / 43
	shrunk := func(sat, n float64) float64 { return (sat + 20*prior) / (n + 20) }
	tests := []struct {
		where              string
		votes              int64
		share, shrunk      float64
		rank               int64
		participation, nps float64 // NaN: must be absent
	}{
		{`"level" = 'all'`, 43, prior, prior, 0, 30.0 / 40, 100 * (2.0 - 1) / 3},
		{`"level" = 'counter' AND "counter" = 'c2'`, 30, 0.8, shrunk(24, 30), 1, 30.0 / 40, math.NaN()},
		{`"level" = 'counter' AND "counter" = 'c1'`, 3, 1, shrunk(3, 3), 2, math.NaN(), math.NaN()},
		{`"level" = 'counter' AND "counter" = 'c3'`, 10, 0.4, shrunk(4, 10), 3, math.NaN(), 100 * (2.0 - 1) / 3},
		{`"level" = 'site' AND "site" = 's1'`, 33, 27.0 / 33, shrunk(27, 33), 1, 30.0 / 40, math.NaN()},
		{`"level" = 'org' AND "org" = 'b'`, 10, 0.4, shrunk(4, 10), 2, math.NaN(), 100 * (2.0 - 1) / 3},
		{`"level" = 'operator' AND "operator" = 'op1'`, 3, 1, shrunk(3, 3), 2, math.NaN(), math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.where, func(t *testing.T) {
			res, err := srv.Query(t.Context(), `SELECT * FROM "rollup" WHERE "window" = '30d' AND `+tt.where)
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != 1 || len(res[0].Values) != 1 {
				t.Fatalf("want one point, got %+v", res)
			}
			s := res[0]
			votes, _ := s.Int(0, "votes")
			share, _ := s.Float(0, "satisfied_share")
			shr, _ := s.Float(0, "shrunk_share")
			rank, _ := s.Int(0, "rank")
			if votes != tt.votes || !near(share, tt.share) || !near(shr, tt.shrunk) || rank != tt.rank {
				t.Errorf("votes %d share %.4f shrunk %.6f rank %d, want %d %.4f %.6f %d",
					votes, share, shr, rank, tt.votes, tt.share, tt.shrunk, tt.rank)
			}
			checkOptional(t, s, "participation", tt.participation)
			checkOptional(t, s, "nps", tt.nps)
			if ts, _ := s.Time(0); !ts.Equal(t0) {
				t.Errorf("point time %v, want the clock's %v", ts, t0)
			}
		})
	}
	// t0 is a Tuesday noon: every rating in the seed is from 11:xx.
	res, err := srv.Query(t.Context(), `SELECT "votes", "satisfied_share" FROM "rollup" WHERE "level" = 'hour_of_week' GROUP BY "org", "weekday", "hour"`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"a/2-Tue/11": 33, "b/2-Tue/11": 10, "/2-Tue/11": 43}
	if len(res) != len(want) {
		t.Errorf("hour_of_week series %d, want %d: %+v", len(res), len(want), res)
	}
	for _, s := range res {
		k := s.Tags["org"] + "/" + s.Tags["weekday"] + "/" + s.Tags["hour"]
		if n, _ := s.Int(0, "votes"); n != want[k] {
			t.Errorf("hour_of_week %s: %d votes, want %d", k, n, want[k])
		}
	}
	if n := testutilCount(t, reg, "semko_rollup_runs_total"); n != 1 {
		t.Errorf("runs metric %v, want 1", n)
	}
}

func checkOptional(t *testing.T, s influxdb.Series, col string, want float64) {
	t.Helper()
	got, err := s.Float(0, col)
	if math.IsNaN(want) {
		if err == nil {
			t.Errorf("%s = %v, want absent", col, got)
		}
		return
	}
	if err != nil || !near(got, want) {
		t.Errorf("%s = %v (%v), want %v", col, got, err, want)
	}
}

func testutilCount(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func TestScheduleOnFakeClock(t *testing.T) {
	srv := influxlocal.StartForTest(t)
	fleet(t, srv)
	clock := clockwork.NewFakeClockAt(t0)
	job, err := New(Options{URL: srv.URL(), Bucket: srv.Database(), Every: 10 * time.Minute, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := job.start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := job.start(ctx); !errors.Is(err, ErrStarted) {
		t.Errorf("second start: %v, want ErrStarted", err)
	}
	stamps := func() []time.Time {
		res, err := srv.Query(ctx, `SELECT "votes" FROM "rollup" WHERE "level" = 'all'`)
		if err != nil || len(res) == 0 {
			return nil
		}
		var out []time.Time
		for i := range res[0].Values {
			ts, _ := res[0].Time(i)
			out = append(out, ts)
		}
		return out
	}
	runs := func() int { return len(stamps()) }
	testwait.For(t, "the immediate first run", func() bool { return runs() == 1 })
	for want := 2; want <= 3; want++ {
		// LimitModeReschedule drops a trigger that arrives while the
		// previous run is still returning (after it wrote its points), so
		// keep advancing until the run happens; dropped triggers write
		// nothing.
		for runs() < want {
			if err := clock.BlockUntilContext(ctx, 1); err != nil {
				t.Fatalf("scheduler never waited on the clock: %v", err)
			}
			clock.Advance(10 * time.Minute)
			short, cancel := context.WithTimeout(ctx, 2*time.Second)
			testwait.Poll(short, func() bool { return runs() >= want })
			cancel()
			if ctx.Err() != nil {
				t.Fatalf("run %d never happened", want)
			}
		}
	}
	if err := job.stop(); err != nil {
		t.Fatal(err)
	}
	got := stamps()
	clock.Advance(time.Hour)
	if after := stamps(); len(after) != len(got) {
		t.Errorf("%d runs after stop, want %d", len(after), len(got))
	}
	for _, ts := range got {
		if ts.Sub(t0)%(10*time.Minute) != 0 {
			t.Errorf("run at %v, not on the 10-minute grid from %v", ts, t0)
		}
	}
}

func TestNewOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"minimal", Options{URL: "http://127.0.0.1:1", Bucket: "semko"}, true},
		{"no url", Options{Bucket: "semko"}, false},
		{"no bucket", Options{URL: "http://127.0.0.1:1"}, false},
		{"negative window", Options{URL: "http://127.0.0.1:1", Bucket: "semko", Window: -time.Hour}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := New(tt.opts)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrOptions)) {
				t.Fatalf("New: %v, want ok=%v", err, tt.ok)
			}
			if j != nil {
				j.Close()
			}
		})
	}
}

func TestRunOnceFailsWhenInfluxDBIsDown(t *testing.T) {
	job, err := New(Options{URL: "http://127.0.0.1:1", Bucket: "semko/autogen", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	if job.opts.Database != "semko" {
		t.Errorf("database %q, want semko", job.opts.Database)
	}
	if err := job.RunOnce(t.Context()); err == nil {
		t.Fatal("RunOnce succeeded with no InfluxDB")
	}
}

// TestWarmUpUntilFirstFigures: a job started before the first votes (a
// fresh `make run`) writes its first figures a WarmUp after they arrive,
// not a whole Every later.
func TestWarmUpUntilFirstFigures(t *testing.T) {
	srv := influxlocal.StartForTest(t)
	clock := clockwork.NewFakeClockAt(t0)
	reg := prometheus.NewRegistry()
	job, err := New(Options{URL: srv.URL(), Bucket: srv.Database(), Every: time.Hour, Clock: clock, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	testwait.For(t, "the run at start", func() bool { return testutilCount(t, reg, "semko_rollup_runs_total") >= 1 })
	if n := testutilCount(t, reg, "semko_rollup_points_written_total"); n != 0 {
		t.Fatalf("%v points written with no votes", n)
	}
	fleet(t, srv)
	// Both schedules wait on the clock: the hourly run and the warm-up.
	wait, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	if err := clock.BlockUntilContext(wait, 2); err != nil {
		t.Fatalf("no warm-up waiting on the clock: %v", err)
	}
	clock.Advance(WarmUp)
	testwait.For(t, "figures a warm-up after the first votes", func() bool {
		return testutilCount(t, reg, "semko_rollup_points_written_total") > 0
	})
}
