// Package longrange is the long-range benchmark of `make bench`: a year of
// one large organisation is generated (opening hours, busy and quiet
// hours, 70% participation), bulk-loaded into a real InfluxDB 1.8.10, the
// aggregates built by the real aggregate job, and then every range panel
// query of the Satisfaction dashboard and the report are timed at 7, 30,
// 90 and 365 days, from raw points and from the aggregates, for the fleet
// and for four times the fleet.
package longrange

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/aggregate"
	"github.com/semko/semko/backend/report"
	"github.com/semko/semko/internal/influxdb"
	"github.com/semko/semko/internal/influxlocal"
)

// Config sizes the run.
type Config struct {
	Dir     string
	Keypads int // keypads of one organisation (the 1x fleet)
	Days    int // days of history
	Repeats int // runs of each query; the table shows the p95 (the slowest of up to 20)
	// Fleets is how many fleet sizes are measured: 1 (1x) or 2 (1x and
	// 4x). A full-scale organisation is measured at 1x only: 4x of it
	// would be 170 M raw points.
	Fleets int
	// RawTimeout stops a raw query (or raw report) that takes longer and
	// shows it as "> RawTimeout": a raw year of 2,000 keypads takes many
	// minutes per panel, and that it does is all the table needs to say.
	// Zero waits for every query.
	RawTimeout time.Duration
	Dashboard  string
	Progress   io.Writer
	// Reuse measures again the data an earlier run left in Dir (see
	// built), without loading or aggregating: a change to the queries is
	// timed without the hour a full-scale year takes to load and backfill.
	Reuse bool
}

// built is what a run records in Dir of a fleet it loaded and aggregated,
// for a later run with Reuse.
type built struct {
	Now       time.Time     `json:"now"` // the hour the data ends at
	Points    int64         `json:"points"`
	Load      time.Duration `json:"load"`
	Aggregate time.Duration `json:"aggregate"`
}

func builtFile(dir, fleet string) string { return filepath.Join(dir, "built-"+fleet+".json") }

// Defaults: the full run and the quick one.
var (
	Full  = Config{Keypads: 50, Days: 365, Repeats: 5, Fleets: 2}
	Quick = Config{Keypads: 10, Days: 35, Repeats: 2, Fleets: 2}
)

// Ranges measured, in days.
var Ranges = []int{7, 30, 90, 365}

// Row is one measured query.
type Row struct {
	Fleet      string // "1x" or "4x"
	Query      string
	Days       int
	Raw, Agg   time.Duration // p95, every variable on All
	RawN, AggN int           // rows answered, to show both did work
	RawCut     bool          // the raw side was stopped at Config.RawTimeout
	// Site is the aggregates' p95 with one site chosen (its site tier).
	Site  time.Duration
	SiteN int
}

// Result is the whole run.
type Result struct {
	Points    map[string]int64 // raw points loaded per fleet
	Load      map[string]time.Duration
	Aggregate map[string]time.Duration
	Rows      []Row
}

// Run does the whole benchmark.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	step := func(format string, a ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
		}
	}
	step("starting InfluxDB 1.8.10 in %s", cfg.Dir)
	srv, err := influxlocal.Start(ctx, influxlocal.Options{Dir: filepath.Join(cfg.Dir, "influxdb")})
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	db, err := influxdb.New(influxdb.Options{URL: srv.URL(), Bucket: srv.Database(), Timeout: 10 * time.Minute})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	panels, err := panelQueries(cfg.Dashboard)
	if err != nil {
		return nil, err
	}
	loc, _ := time.LoadLocation("Europe/Sofia")
	if loc == nil {
		loc = time.UTC
	}
	now := time.Now().UTC().Truncate(time.Hour)
	var reused map[string]built
	if cfg.Reuse {
		reused = map[string]built{}
		for _, fleet := range []string{"1x", "4x"}[:max(1, min(cfg.Fleets, 2))] {
			var b built
			raw, err := os.ReadFile(builtFile(cfg.Dir, fleet))
			if err == nil {
				err = json.Unmarshal(raw, &b)
			}
			if err != nil {
				return nil, fmt.Errorf("reuse %s: %w (run once without -reuse on this directory first)", fleet, err)
			}
			reused[fleet], now = b, b.Now
		}
	}
	res := &Result{Points: map[string]int64{}, Load: map[string]time.Duration{}, Aggregate: map[string]time.Duration{}}
	orgs := []string{"org-1", "org-2", "org-3", "org-4"}
	var total int64
	for _, fleet := range []struct {
		name string
		orgs []string
	}{{"1x", orgs[:1]}, {"4x", orgs[1:]}}[:max(1, min(cfg.Fleets, 2))] {
		if b, ok := reused[fleet.name]; ok {
			res.Points[fleet.name], res.Load[fleet.name], res.Aggregate[fleet.name] = b.Points, b.Load, b.Aggregate
			step("%s: reusing %d raw points and their aggregates, data up to %s", fleet.name, b.Points, b.Now.Format(time.RFC3339))
		} else if err := loadAndAggregate(ctx, cfg, srv, fleet.name, fleet.orgs, now, loc, &total, res, step); err != nil {
			return res, err
		}
		for _, days := range Ranges {
			if days > cfg.Days {
				continue
			}
			if err := measureRange(ctx, cfg, db, panels, fleet.name, days, now, loc, res, step); err != nil {
				return res, err
			}
			step("%s: %d days measured", fleet.name, days)
		}
	}
	return res, nil
}

// measureRange times every panel and the report at one range. The
// aggregates are timed first, every panel in turn, then the raw queries,
// so that no panel's figure carries what a raw year left behind (a
// dashboard on a long range never sends one: its gates answer from the
// aggregates); a raw run cut at its limit is killed besides (killQueries).
func measureRange(ctx context.Context, cfg Config, db *influxdb.Client, panels []panel, fleet string, days int, now time.Time,
	loc *time.Location, res *Result, step func(string, ...any)) error {
	from := now.Add(-time.Duration(days) * 24 * time.Hour)
	window := fmt.Sprintf("time >= '%s' AND time < '%s'", from.Format(time.RFC3339), now.Format(time.RFC3339))
	interval := fmt.Sprintf("%ds", max(3600, days*24*3600/1000)) // Grafana: range / ~1000 points, at least the panel's 1h
	// What Grafana sends: variables on All, or one site chosen (its
	// ${name:text} gates pick the tier, see the dashboard).
	sub := func(q, rangeS string, vars map[string]string) string {
		q = strings.ReplaceAll(q, "$__range_s", rangeS)
		q = strings.ReplaceAll(q, "$timeFilter", window)
		q = strings.ReplaceAll(q, "$__interval", interval)
		for _, v := range []string{"org", "site", "counter", "operator", "service"} {
			val, text := ".*", "All"
			if s, ok := vars[v]; ok {
				val, text = s, s
			}
			q = strings.ReplaceAll(q, "${"+v+":text}", text)
			q = strings.ReplaceAll(q, "$"+v, val)
		}
		return q
	}
	rangeS := fmt.Sprint(days * 86400)
	oneSite := map[string]string{"org": "org-1", "site": "org-1-s000"}
	rows := make([]Row, len(panels))
	var err error
	for i, p := range panels {
		r := Row{Fleet: fleet, Query: p.name, Days: days}
		r.Agg, r.AggN, err = timeTwins(ctx, db, p.family, func(q string) string { return sub(q, rangeS, nil) }, cfg.Repeats)
		if err != nil {
			return fmt.Errorf("%s aggregates: %w", p.name, err)
		}
		r.Site, r.SiteN, err = timeTwins(ctx, db, p.family, func(q string) string { return sub(q, rangeS, oneSite) }, cfg.Repeats)
		if err != nil {
			return fmt.Errorf("%s aggregates, one site: %w", p.name, err)
		}
		rows[i] = r
	}
	for i, p := range panels {
		r := &rows[i]
		r.Raw, r.RawN, r.RawCut, err = timeQuery(ctx, db, sub(p.raw, "3600", nil), cfg.Repeats, cfg.RawTimeout)
		if err != nil {
			return fmt.Errorf("%s raw: %w", p.name, err)
		}
		res.Rows = append(res.Rows, *r)
		step("%s", *r)
	}
	// The report of the first organisation, as a manager downloads it
	// (PDF rendering included): the last days through today so far, and
	// the same number of whole days up to last midnight, as a scheduled
	// report reads them.
	today := now.Add(-time.Hour)
	for _, rp := range []struct {
		name        string
		first, last time.Time
	}{
		{"report org-1 through today (PDF)", today.AddDate(0, 0, -(days - 1)), today},
		{"report org-1 whole days (PDF)", today.AddDate(0, 0, -days), today.AddDate(0, 0, -1)},
	} {
		period, err := report.CustomPeriod(rp.first, rp.last, loc)
		if err != nil {
			return err
		}
		r := Row{Fleet: fleet, Query: rp.name, Days: days}
		timeOne := func(agg bool, req report.Request, limit time.Duration, what string) (time.Duration, int, bool, error) {
			b := &report.Builder{DB: db, Now: func() time.Time { return now }, Aggregates: agg, RawUpTo: time.Hour}
			label := fmt.Sprintf("%s: %s, %d days, %s", fleet, rp.name, days, what)
			return timeReport(ctx, db, b, req, cfg.Repeats, limit, func(build, pdf time.Duration) {
				step("%s: build %s, PDF %s (the slowest run)", label, ms(build), ms(pdf))
			})
		}
		org := report.Request{Org: "org-1", Period: period, Lang: "en", Caller: access.Everything}
		site := org
		site.Site = "org-1-s000"
		if r.Agg, r.AggN, _, err = timeOne(true, org, 0, "aggregates"); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		if r.Site, r.SiteN, _, err = timeOne(true, site, 0, "aggregates, one site"); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		if r.Raw, r.RawN, r.RawCut, err = timeOne(false, org, cfg.RawTimeout, "raw"); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		res.Rows = append(res.Rows, r)
		step("%s", r)
	}
	return nil
}

// slow is where repeating a query stops: a raw year of a large fleet
// takes long enough that one run says all there is to say.
const slow = 10 * time.Second

// timeQuery times q; with a limit, a run that reaches it is stopped
// (InfluxDB aborts a query whose client went away) and reported as cut.
func timeQuery(ctx context.Context, db *influxdb.Client, q string, repeats int, limit time.Duration) (time.Duration, int, bool, error) {
	var ds []time.Duration
	rows := 0
	for range repeats {
		begin := time.Now()
		res, err := withLimit(ctx, limit, func(ctx context.Context) ([]influxdb.Series, error) { return db.Query(ctx, q) })
		if errors.Is(err, errCut) {
			return limit, 0, true, killQueries(ctx, db)
		}
		if err != nil {
			return 0, 0, false, err
		}
		ds = append(ds, time.Since(begin))
		rows = 0
		for _, s := range res {
			rows += len(s.Values)
		}
		if ds[len(ds)-1] > slow {
			break
		}
	}
	return p95(ds), rows, false, nil
}

// killQueries stops what InfluxDB still runs of a run cut at its limit
// and waits until it runs nothing else. InfluxDB notices a client gone
// only between batches: a raw year's query went on for tens of seconds
// after its cut, and the next queries timed (the first panels of the next
// range) took 3-8 s where the same ones took 20-40 ms after it ended.
func killQueries(ctx context.Context, db *influxdb.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		res, err := db.Query(ctx, "SHOW QUERIES")
		if err != nil {
			return fmt.Errorf("show queries: %w", err)
		}
		var running []int64
		for _, s := range res {
			for row := range s.Values {
				q, _ := s.Text(row, "query")
				if id, err := s.Int(row, "qid"); err == nil && q != "SHOW QUERIES" {
					running = append(running, id)
				}
			}
		}
		if len(running) == 0 {
			return nil
		}
		for _, id := range running {
			// A query that ended meanwhile is an error here; the next round
			// sees whether anything is left.
			_, _ = db.Query(ctx, fmt.Sprintf("KILL QUERY %d", id))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("queries still running after a cut: %v: %w", running, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// errCut is a run stopped at its limit.
var errCut = errors.New("stopped at the raw time limit")

// withLimit runs f under limit (none when zero); reaching it gives errCut.
func withLimit[T any](ctx context.Context, limit time.Duration, f func(context.Context) (T, error)) (T, error) {
	if limit <= 0 {
		return f(ctx)
	}
	lctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	v, err := f(lctx)
	if err != nil && ctx.Err() == nil && lctx.Err() != nil {
		return v, errCut
	}
	return v, err
}

// timeTwins times what Grafana sends for one panel query at a long range:
// all its tier twins, of which the gates let one answer. Each round runs
// them in turn; the rows are those of the one that answered.
func timeTwins(ctx context.Context, db *influxdb.Client, twins []string, sub func(string) string, repeats int) (time.Duration, int, error) {
	var ds []time.Duration
	rows := 0
	for range repeats {
		begin := time.Now()
		rows = 0
		for _, q := range twins {
			res, err := db.Query(ctx, sub(q))
			if err != nil {
				return 0, 0, err
			}
			for _, s := range res {
				rows += len(s.Values)
			}
		}
		ds = append(ds, time.Since(begin))
	}
	return p95(ds), rows, nil
}

// timeReport times building r and rendering it to PDF; split gets the
// two parts of the slowest run, to tell queries from rendering.
func timeReport(ctx context.Context, db *influxdb.Client, b *report.Builder, r report.Request, repeats int, limit time.Duration,
	split func(build, pdf time.Duration)) (time.Duration, int, bool, error) {
	var ds []time.Duration
	var build, pdf time.Duration
	votes := 0
	for range repeats {
		begin := time.Now()
		rep, err := withLimit(ctx, limit, func(ctx context.Context) (*report.Report, error) { return b.Build(ctx, r) })
		if errors.Is(err, errCut) {
			return limit, 0, true, killQueries(ctx, db)
		}
		if err != nil {
			return 0, 0, false, err
		}
		built := time.Since(begin)
		if err := rep.WritePDF(io.Discard); err != nil {
			return 0, 0, false, err
		}
		ds = append(ds, time.Since(begin))
		if d := ds[len(ds)-1]; d >= slices.Max(ds) {
			build, pdf = built, d-built
		}
		votes = int(rep.Totals.Votes)
		if ds[len(ds)-1] > slow {
			break
		}
	}
	if split != nil {
		split(build, pdf)
	}
	return p95(ds), votes, false, nil
}

// p95 of a few samples is their largest but for one in twenty.
func p95(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*0.95))]
}

// panel is a raw query and its family: itself and its aggregate twins
// (per tier and grain), all of which Grafana sends; constant conditions
// on the range and the variables let one of them answer.
type panel struct {
	name   string
	raw    string
	family []string
}

// panelQueries reads the range panels' query families from the
// dashboard: the i-th raw query of a panel and the i-th query of each
// tier and grain belong together.
func panelQueries(path string) ([]panel, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read dashboard: %w", err)
	}
	var d struct {
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Targets []struct {
				RefID string `json:"refId"`
				Query string `json:"query"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("read dashboard: %w", err)
	}
	var out []panel
	for _, p := range d.Panels {
		// Twins by tier and grain (the measurement less vote or
		// activation: "_1d", "_site_1h", ...), each list in the order of
		// the raw queries.
		var raws, keys []string
		twins := map[string][]string{}
		for _, t := range p.Targets {
			q := t.Query
			switch {
			case strings.Contains(q, "$__range_s >= "):
				_, rest, _ := strings.Cut(q, ` FROM "`)
				m, _, _ := strings.Cut(rest, `"`)
				k := strings.TrimPrefix(strings.TrimPrefix(m, "vote"), "activation")
				if twins[k] == nil {
					keys = append(keys, k)
				}
				twins[k] = append(twins[k], q)
			case strings.Contains(q, "$__range_s < 172800"):
				raws = append(raws, q)
			}
		}
		for i := range raws {
			name := p.Title
			if len(raws) > 1 {
				name = fmt.Sprintf("%s (%d)", p.Title, i+1)
			}
			pn := panel{name: name, raw: raws[i], family: []string{raws[i]}}
			for _, k := range keys {
				if i < len(twins[k]) {
					pn.family = append(pn.family, twins[k][i])
				}
			}
			if len(pn.family) > 1 {
				out = append(out, pn)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no range panels with aggregate twins in %s", path)
	}
	return out, nil
}

// load generates an organisation's history and writes it: sites of ten
// counters, each with one keypad and two operators; open Monday to Friday
// 08:00-17:00 (a quarter of the sites also Saturday 09:00-13:00, local
// time); about five services an hour a counter, more before noon; 70% of
// them answered.
func load(ctx context.Context, srv *influxlocal.Server, org string, keypads, days int, now time.Time, loc *time.Location) (int64, error) {
	rng := rand.New(rand.NewPCG(uint64(len(org)), uint64(org[len(org)-1])))
	services := []string{"passport", "id-card", "tax", "cash", "benefits"}
	batches := make(chan []byte, 4)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				if err := post(ctx, srv, b); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	var buf bytes.Buffer
	var points int64
	lines := 0
	flush := func() {
		batches <- bytes.Clone(buf.Bytes())
		buf.Reset()
		lines = 0
	}
	start := now.Add(-time.Duration(days) * 24 * time.Hour)
	// Day by day across all counters, so shards fill in time order.
	for day := start.In(loc); day.Before(now); day = day.AddDate(0, 0, 1) {
		mid := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, loc)
		wd := mid.Weekday()
		for k := range keypads {
			site := fmt.Sprintf("%s-s%03d", org, k/10)
			saturday := (k/10)%4 == 0
			open, close := 8, 17
			switch {
			case wd == time.Sunday, wd == time.Saturday && !saturday:
				continue
			case wd == time.Saturday:
				open, close = 9, 13
			}
			counter := fmt.Sprintf("%s-c%02d", site, k%10)
			dev := fmt.Sprintf("kp-%s-%05d", org, k)
			for h := open; h < close; h++ {
				n := rng.IntN(6) + 2 // 2..7
				if h >= 10 && h < 12 {
					n += 3
				}
				for range n {
					at := mid.Add(time.Duration(h)*time.Hour + time.Duration(rng.IntN(3600))*time.Second)
					if !at.Before(now) {
						continue
					}
					op := fmt.Sprintf("%s-op%d", counter, rng.IntN(2))
					svc := services[rng.IntN(len(services))]
					svcS := 60 + rng.IntN(900)
					voted := rng.Float64() < 0.7
					fmt.Fprintf(&buf, "activation,channel=keypad,counter=%s,device=%s,operator=%s,org=%s,service=%s,site=%s,valid=true service_s=%di,voted=%di,closed=1i,window_s=30i %d\n",
						counter, dev, op, org, svc, site, svcS, b2i(voted), at.Unix())
					points++
					lines++
					if voted {
						score := scoreOf(rng.Float64())
						fmt.Fprintf(&buf, "vote,channel=keypad,counter=%s,device=%s,operator=%s,org=%s,scale=csat5,service=%s,site=%s score=%di,satisfied=%di,negative=%di,service_s=%di,latency_ms=%di,valid=\"true\" %d\n",
							counter, dev, op, org, svc, site, score, b2i(score >= 4), b2i(score <= 2), svcS, 2000+rng.IntN(8000), at.Add(10*time.Second).Unix())
						points++
						lines++
					}
					if lines >= 10000 {
						flush()
					}
				}
			}
		}
		select {
		case err := <-errs:
			close(batches)
			wg.Wait()
			return points, err
		default:
		}
	}
	if lines > 0 {
		flush()
	}
	close(batches)
	wg.Wait()
	select {
	case err := <-errs:
		return points, err
	default:
	}
	return points, nil
}

// scoreOf draws a score: most customers content, a few angry.
func scoreOf(u float64) int {
	for i, c := range []float64{0.06, 0.11, 0.22, 0.52} {
		if u < c {
			return i + 1
		}
	}
	return 5
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func post(ctx context.Context, srv *influxlocal.Server, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL()+"/write?precision=s&db="+srv.Database(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		return fmt.Errorf("load: HTTP %s: %s", resp.Status, msg)
	}
	return nil
}

// Print writes the table as Markdown.
func Print(w io.Writer, cfg Config, machine string, r *Result) {
	fmt.Fprintf(w, "machine: %s\nfleet 1x: one organisation of %d keypads, %d days; 4x: four such organisations\n\n", machine, cfg.Keypads, cfg.Days)
	for _, f := range []string{"1x", "4x"}[:max(1, min(cfg.Fleets, 2))] {
		fmt.Fprintf(w, "%s: %d raw points loaded in %s, aggregates built in %s\n", f, r.Points[f], r.Load[f].Round(time.Second), r.Aggregate[f].Round(time.Second))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| fleet | query | days | raw p95 (All) | aggregates p95 (All) | aggregates p95 (one site) | rows raw/agg/site |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|")
	for _, row := range r.Rows {
		fmt.Fprintln(w, row)
	}
}

// String is the row as a line of the Markdown table.
func (row Row) String() string {
	raw, rawN := ms(row.Raw), fmt.Sprint(row.RawN)
	if row.RawCut {
		raw, rawN = "> "+row.Raw.String(), "-"
	}
	return fmt.Sprintf("| %s | %s | %d | %s | %s | %s | %s/%d/%d |", row.Fleet, row.Query, row.Days, raw, ms(row.Agg), ms(row.Site),
		rawN, row.AggN, row.SiteN)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }

// loadAndAggregate generates and loads the organisations of one fleet,
// builds their aggregates with the real job, and records what it built
// for a later run with Reuse. total counts the raw points of every fleet
// so far.
func loadAndAggregate(ctx context.Context, cfg Config, srv *influxlocal.Server, fleet string, orgs []string, now time.Time,
	loc *time.Location, total *int64, res *Result, step func(string, ...any)) error {
	begin := time.Now()
	for _, org := range orgs {
		step("%s: generating and loading %d days of %s (%d keypads)", fleet, cfg.Days, org, cfg.Keypads)
		n, err := load(ctx, srv, org, cfg.Keypads, cfg.Days, now, loc)
		if err != nil {
			return err
		}
		*total += n
	}
	res.Points[fleet] = *total
	res.Load[fleet] = time.Since(begin)
	step("%s: %d raw points in %s; building aggregates", fleet, *total, res.Load[fleet].Round(time.Second))
	begin = time.Now()
	job, err := aggregate.New(aggregate.Options{URL: srv.URL(), Bucket: srv.Database(), Clock: clockwork.NewFakeClockAt(now),
		StateFile: filepath.Join(cfg.Dir, "aggregate-"+fleet+".json"), Backfill: time.Duration(cfg.Days+2) * 24 * time.Hour,
		Timeout: 6 * time.Hour}) // a first backfill of a large fleet
	if err != nil {
		return err
	}
	err = job.RunOnce(ctx)
	_ = job.Close()
	if err != nil {
		return err
	}
	res.Aggregate[fleet] = time.Since(begin)
	step("%s: aggregates built in %s; timing queries", fleet, res.Aggregate[fleet].Round(time.Second))
	raw, err := json.Marshal(built{Now: now, Points: res.Points[fleet], Load: res.Load[fleet], Aggregate: res.Aggregate[fleet]})
	if err != nil {
		return err
	}
	return os.WriteFile(builtFile(cfg.Dir, fleet), raw, 0o644)
}
