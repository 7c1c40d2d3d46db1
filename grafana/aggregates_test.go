package grafana

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/backend/aggregate"
	"github.com/semko/semko/internal/influxlocal"
)

// aggregateBranch marks the twins of a raw panel query that read the
// aggregates: Grafana sends all three, and InfluxQL reduces the constant
// comparisons so that only one of them returns points (raw below two
// days, hourly aggregates up to 30 days, daily ones from 30 days on).
const (
	aggregateBranch = "$__range_s >= "
	hourlyBranch    = "$__range_s >= 172800 AND $__range_s < 2592000"
	dailyBranch     = "$__range_s >= 2592000"
	rawBranch       = "$__range_s < 172800"
)

// rangeSeconds is Grafana's $__range_s for a panel: its relative time, or
// the dashboard's default range of 24 hours.
func rangeSeconds(timeFrom string) string {
	if days, ok := strings.CutSuffix(timeFrom, "d"); ok {
		var n int64
		if _, err := fmt.Sscan(days, &n); err == nil {
			return fmt.Sprint(n * 86400)
		}
	}
	if d, err := time.ParseDuration(timeFrom); err == nil {
		return fmt.Sprint(int64(d.Seconds()))
	}
	return "86400"
}

// TestAggregatesGiveTheSameFigures runs every panel query that has an
// aggregates twin both ways over the same hour-aligned week and compares
// what Grafana would draw.
func TestAggregatesGiveTheSameFigures(t *testing.T) {
	srv := influxlocal.StartForTest(t)
	now := time.Date(2026, 11, 30, 15, 20, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(7, 7))
	var lines []string
	for i := range 4000 {
		at := now.Add(-time.Duration(rng.Int64N(int64(40 * 24 * time.Hour))))
		org := []string{"city", "water"}[rng.IntN(2)]
		site := fmt.Sprintf("%s-%d", org, rng.IntN(3))
		counter := fmt.Sprintf("%s-c%d", site, rng.IntN(2))
		op, svc := fmt.Sprintf("op-%d", rng.IntN(4)), services[rng.IntN(len(services))]
		score, scale := 1+rng.IntN(5), "csat5"
		if rng.IntN(10) == 0 {
			score, scale = rng.IntN(11), "nps11"
		}
		sat, neg := score >= 4, score <= 2
		if scale == "nps11" {
			sat, neg = score >= 9, score <= 6
		}
		valid := rng.IntN(10) != 0
		tags := fmt.Sprintf("vote,channel=keypad,counter=%s,device=kp-%s,operator=%s,org=%s,scale=%s,service=%s,site=%s",
			counter, counter, op, org, scale, svc, site)
		fields := fmt.Sprintf("score=%di,satisfied=%di,negative=%di,service_s=%di", score, b2i(sat), b2i(neg), 60+rng.IntN(600))
		if i%2 == 0 {
			tags += fmt.Sprintf(",valid=%t", valid)
		} else {
			fields += fmt.Sprintf(`,valid="%t"`, valid)
		}
		lines = append(lines, fmt.Sprintf("%s %s %d", tags, fields, at.UnixNano()))
		// Every activation here is closed: an hour whose activations are
		// all still open would show participation 0 from the aggregates
		// and nothing from raw points (see README.md).
		lines = append(lines, fmt.Sprintf("activation,channel=keypad,counter=%s,device=kp-%s,operator=%s,org=%s,service=%s,site=%s,valid=true service_s=300i,voted=%di,closed=1i %d",
			counter, counter, op, org, svc, site, b2i(rng.IntN(10) < 7), at.Add(-time.Minute).UnixNano()))
	}
	resp, err := http.Post(srv.URL()+"/write?db="+srv.Database(), "text/plain", strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("seed: %s", resp.Status)
	}
	job, err := aggregate.New(aggregate.Options{URL: srv.URL(), Bucket: srv.Database(),
		StateFile: filepath.Join(t.TempDir(), "aggregate.json"), Clock: clockwork.NewFakeClockAt(now)})
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	if err := job.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}

	// A week ending at the last whole hour, as Grafana's "Last 7 days"
	// would be with the range snapped to hours, and 35 whole days.
	end := now.Truncate(time.Hour)
	week := fmt.Sprintf("time >= '%s' AND time < '%s'", end.Add(-7*24*time.Hour).Format(time.RFC3339), end.Format(time.RFC3339))
	dayEnd := now.Truncate(24 * time.Hour)
	days := fmt.Sprintf("time >= '%s' AND time < '%s'", dayEnd.Add(-35*24*time.Hour).Format(time.RFC3339), dayEnd.Format(time.RFC3339))
	tiers := []struct{ name, window, rangeS, grain string }{
		{"hourly", week, "604800", "1h"},
		{"daily", days, "3024000", "1d"},
	}
	// A raw panel query has a family of twins: per site and per
	// organisation every hour (from two days) and every day (from 30
	// days), and the finest tier every day (from 30 days; below that a
	// filter on counter, operator or service reads raw points, which for
	// one of them are few). Constant conditions on the range and on
	// ${name:text} let exactly one member of the family answer.
	type member struct{ tier, grain string }
	memberOf := func(q string) (member, bool) {
		m := member{"fine", ""}
		switch {
		case strings.Contains(q, "_org_1"):
			m.tier = "org"
		case strings.Contains(q, "_site_1"):
			m.tier = "site"
		}
		switch {
		case strings.Contains(q, hourlyBranch):
			m.grain = "1h"
		case strings.Contains(q, dailyBranch):
			m.grain = "1d"
		case strings.Contains(q, rawBranch):
			m.grain, m.tier = "raw", "raw"
		default:
			return m, false
		}
		return m, true
	}
	sets := []struct {
		vars map[string]string
		tier string // the tier that answers from 2 days on
	}{
		{nil, "org"},
		{map[string]string{"org": "city"}, "org"},
		{map[string]string{"org": "city", "site": "city-1"}, "site"},
		{map[string]string{"site": "water-2"}, "site"},
		{map[string]string{"operator": "op-2", "service": "tax"}, "fine"},
		{map[string]string{"org": "water", "counter": "water-0-c1"}, "fine"},
	}
	families := []member{{"raw", "raw"}, {"site", "1h"}, {"org", "1h"}, {"fine", "1d"}, {"site", "1d"}, {"org", "1d"}}
	compared := 0
	for _, d := range loadDashboards(t) {
		for _, p := range d.allPanels() {
			byMember := map[member][]string{}
			for _, tg := range p.Targets {
				if m, ok := memberOf(tg.Query); ok {
					byMember[m] = append(byMember[m], tg.Query)
				}
			}
			raws := byMember[member{"raw", "raw"}]
			if len(byMember) == 0 {
				continue // no aggregate twins
			}
			for _, m := range families {
				if len(byMember[m]) != len(raws) {
					t.Errorf("%s panel %d: %d raw queries, %d of %v", d.file, p.ID, len(raws), len(byMember[m]), m)
				}
			}
			if t.Failed() {
				continue
			}
			for _, tier := range tiers {
				for i := range raws {
					for _, set := range sets {
						name := fmt.Sprintf("%s panel %d %q query %d, %s, %v", d.file, p.ID, p.Title, i, tier.name, set.vars)
						run := func(q, rangeS string) map[string]float64 {
							stmt := substitute(d, q, "", now, set.vars)
							stmt = strings.NewReplacer("time > now() - 24h", tier.window, "GROUP BY time(1m)", "GROUP BY time("+tier.grain+")",
								"86400", rangeS).Replace(stmt)
							res, err := srv.Query(t.Context(), stmt)
							if err != nil {
								t.Fatalf("%s: %v\n%s", name, err, stmt)
							}
							out := map[string]float64{}
							for _, s := range res {
								for row := range s.Values {
									ts, _ := s.Number(row, "time")
									for _, c := range s.Columns[1:] {
										if v, ok := s.Number(row, c); ok {
											out[fmt.Sprintf("%d", int64(ts))] += v
										}
									}
								}
							}
							return out
						}
						// The truth: the raw query over the same window.
						rawFig := run(raws[i], "3600")
						if len(rawFig) == 0 {
							t.Errorf("%s: no figures to compare", name)
							continue
						}
						want := member{set.tier, tier.grain}
						if set.tier == "fine" && tier.grain == "1h" {
							want = member{"raw", "raw"}
						}
						for _, m := range families {
							q := byMember[m][i]
							if m.grain != "raw" && len(run(q, "3600")) != 0 {
								t.Errorf("%s: %v answers for a short range", name, m)
							}
							fig := run(q, tier.rangeS)
							switch {
							case m != want && len(fig) != 0:
								t.Errorf("%s: %v answers too (want only %v)", name, m, want)
							case m == want && !sameFigures(rawFig, fig):
								t.Errorf("%s, %v:\n raw        %v\n aggregates %v", name, m, rawFig, fig)
							case m == want && m.grain != "raw":
								compared++
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d aggregate queries compared with raw", compared)
	if compared < 100 {
		t.Errorf("only %d queries compared", compared)
	}
}

func sameFigures(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || math.Abs(v-w) > 1e-9*math.Max(1, math.Abs(v)) {
			return false
		}
	}
	return true
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
