// Package aggregate writes hourly and daily aggregates of the raw `vote`
// and `activation` points back into InfluxDB, so that figures over months
// and years read thousands of points instead of millions. They come in
// tiers (see Tier): the finest keeps every tag dashboards filter by, the
// coarser ones per operator, site and organisation answer "All" views
// from a few series. A report tier (ReportDaily) packs what a report of an
// organisation or a site needs of a site's day into one point.
//
// Aggregates hold counts and sums only (votes, score sums, satisfied,
// negative, votes per score, service time sums; activations, voted), so
// every ratio is computed from them exactly as from the raw points: a mean
// is a sum over a count, never a mean of means.
//
// The job is idempotent: a period aggregated again gives the same points
// (same tags, same timestamps, the same fields), which InfluxDB overwrites.
// It keeps a high-water mark in a small state file, catches up from there
// after downtime, and aggregates again the last Settle hours on every run
// and the whole ingest.max_age window every Refold, so that late votes
// (an edge that was offline for days) are folded in.
package aggregate

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/influxdata/influxdb-client-go/v2/api/write"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/elector"
	"github.com/semko/semko/internal/influxdb"
)

// Measurements of the finest tier (every tag dashboards filter by); it
// is daily only (see Tier.Hourly).
const (
	VoteDaily       = "vote_1d"
	ActivationDaily = "activation_1d"
)

// VoteTags and ActivationTags are the tags the finest tier keeps: those
// the dashboards and reports group or filter by. The device is left out:
// per device figures (health) read raw points over short ranges.
var (
	VoteTags       = []string{"org", "site", "counter", "operator", "service", "channel", "scale"}
	ActivationTags = []string{"org", "site", "counter", "operator", "service"}
)

// Tier is one set of aggregates: the tags it keeps and, by them, its
// measurements. A coarser tier answers the views that do not filter by
// the tags it drops (a dashboard on "All" counters, operators and
// services; a report ranking sites and operators) from far fewer series:
// a year of an organisation per site per day is some tens of thousands
// of points however many counters, operators and services it has.
type Tier struct {
	// Name is the measurements' infix ("" for the finest tier).
	Name                     string
	VoteTags, ActivationTags []string
	// Hourly says whether the tier has hourly points besides daily ones.
	// The finest and the per-operator tiers have none: a counter serves a
	// handful of people an hour over several operators and services, so
	// their hourly points would be nearly as many as the raw points they
	// sum (writing them was most of a backfill's time) and no faster to
	// read. Views that need them for less than a day's grain read raw
	// points, which for one counter, operator or service are few.
	Hourly bool
}

// The tiers, finest first. scale stays in every vote tier: keypad
// ratings and NPS answers never add up.
var (
	Fine     = Tier{"", VoteTags, ActivationTags, false}
	Operator = Tier{"op", []string{"org", "site", "operator", "scale"}, []string{"org", "site", "operator"}, false}
	Site     = Tier{"site", []string{"org", "site", "scale"}, []string{"org", "site"}, true}
	Org      = Tier{"org", []string{"org", "scale"}, []string{"org"}, true}
	Tiers    = []Tier{Fine, Operator, Site, Org}
)

// ReportDaily is the report tier: one point per organisation, site and
// UTC day (tags org and site) whose one string field, ReportField, holds
// a ReportDay as JSON. It is what a report of an organisation or a site
// reads for whole days: its operator ranking, its scores and, from the
// hours of the day, its days and hour-of-week map in the report's zone
// (which this job does not need to know). The other tiers answer the same
// questions from one point per operator, or per hour, per field: over a
// year InfluxDB opens a cursor for every series, field and weekly shard
// (50 operators, seven fields, 53 shards: some 18,000 for the ranking of
// a year), while this tier costs one per site and shard and one point per
// site and day, however many hours and operators the day had. A day is
// a few kilobytes of JSON (some 60 bytes an operator, 40 an hour).
const (
	ReportDaily = "report_site_1d"
	ReportField = "sums"
)

// ReportDay is a ReportDaily point's field: the day's keypad ratings
// (every scale but nps11, as a report counts them) and activations of one
// site. Counts and sums only, so that days and sites add up exactly.
type ReportDay struct {
	// Ops is per operator ("" for points without one): votes, score sum,
	// satisfied, negative, service time sum, closed activations, voted.
	// An operator is listed when the day has a rating or an activation of
	// theirs.
	Ops map[string]*[7]int64 `json:"ops"`
	// Hours is per hour of the UTC day (0-23): votes, score sum,
	// satisfied, negative, closed activations, voted.
	Hours map[int]*[6]int64 `json:"hours"`
	// Scores counts votes of 1 to 5.
	Scores [5]int64 `json:"scores"`
}

// Vote is the tier's hourly or daily vote measurement.
func (t Tier) Vote(daily bool) string { return t.measurement("vote", daily) }

// Activation is the tier's hourly or daily activation measurement.
func (t Tier) Activation(daily bool) string { return t.measurement("activation", daily) }

func (t Tier) measurement(base string, daily bool) string {
	if t.Name != "" {
		base += "_" + t.Name
	}
	if daily {
		return base + "_1d"
	}
	return base + "_1h"
}

// Defaults of zero Options fields.
const (
	DefaultEvery  = 10 * time.Minute
	DefaultSettle = 2 * time.Hour
	DefaultRefold = 6 * time.Hour
	DefaultMaxAge = 35 * 24 * time.Hour
	// DefaultBackfill bounds how far back a first run looks for raw
	// points to aggregate.
	DefaultBackfill = 400 * 24 * time.Hour
)

// ErrOptions means New was given options that cannot work.
var ErrOptions = errors.New("invalid aggregate options")

// Options configures a Job.
type Options struct {
	// URL, Token, Org, Bucket and Database reach InfluxDB as in rollup.
	URL, Token, Org, Bucket, Database string
	// StateFile keeps the high-water mark between runs. Required.
	StateFile string
	// Every is how often the job runs.
	Every time.Duration
	// Settle is how far behind the high-water mark every run starts: votes
	// still in flight through the spool land in hours already aggregated.
	Settle time.Duration
	// MaxAge is ingest.max_age: the oldest a vote can be when it arrives.
	// Every Refold the whole window is aggregated again.
	MaxAge, Refold time.Duration
	// Backfill bounds the first run's look-back.
	Backfill time.Duration
	Clock    clockwork.Clock
	// Cluster, when set (a replica of a cluster: backend/elector's
	// Slots.Every), makes one replica run each period: every replica's
	// schedule starts on a multiple of the period and each run first claims
	// its slot. Nil: this process runs every period itself.
	Cluster func(period time.Duration) gocron.Locker
	Timeout time.Duration // one run; default 30 min (a first backfill is long)
	Logger  *slog.Logger
	// Registerer, if set, receives the job's metrics.
	Registerer prometheus.Registerer
}

// Job is the aggregation job.
type Job struct {
	opts Options
	db   *influxdb.Client
	log  *slog.Logger

	runs   *prometheus.CounterVec
	points prometheus.Counter
	lag    prometheus.Gauge

	runMu sync.Mutex   // one run at a time (RunOnce and the schedule)
	done  atomic.Int64 // the mark in Unix nanoseconds, 0 before the first run
}

// Done is the high-water mark: aggregates are complete before it (less
// what arrives late, folded in by later runs). Zero until a run, or the
// state file, says otherwise: readers then use the raw points.
func (j *Job) Done() time.Time {
	if ns := j.done.Load(); ns != 0 {
		return time.Unix(0, ns).UTC()
	}
	return time.Time{}
}

// state is what the state file holds.
type state struct {
	// Layout is the set of measurements the mark covers (stateLayout).
	Layout int `json:"layout"`
	// Done is the end of the last hour aggregated (exclusive).
	Done time.Time `json:"done"`
	// Refolded is when the max_age window was last aggregated again.
	Refolded time.Time `json:"refolded"`
}

// New checks opts; nothing is contacted yet.
func New(opts Options) (*Job, error) {
	if opts.URL == "" || opts.Bucket == "" || opts.StateFile == "" {
		return nil, fmt.Errorf("%w: URL, Bucket and StateFile are required", ErrOptions)
	}
	if opts.Every < 0 || opts.Settle < 0 || opts.MaxAge < 0 || opts.Refold < 0 || opts.Backfill < 0 {
		return nil, fmt.Errorf("%w: durations must not be negative", ErrOptions)
	}
	if opts.Database == "" {
		opts.Database, _, _ = strings.Cut(opts.Bucket, "/")
	}
	opts.Every = cmp.Or(opts.Every, DefaultEvery)
	opts.Settle = cmp.Or(opts.Settle, DefaultSettle)
	opts.MaxAge = cmp.Or(opts.MaxAge, DefaultMaxAge)
	opts.Refold = cmp.Or(opts.Refold, DefaultRefold)
	opts.Backfill = cmp.Or(opts.Backfill, DefaultBackfill)
	opts.Timeout = cmp.Or(opts.Timeout, 30*time.Minute)
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	db, err := influxdb.New(influxdb.Options{URL: opts.URL, Token: opts.Token, Org: opts.Org, Bucket: opts.Bucket,
		Database: opts.Database, Timeout: 5 * time.Minute})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOptions, err)
	}
	j := &Job{opts: opts, db: db, log: opts.Logger.With("job", "aggregate"),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "semko_aggregate_runs_total", Help: "Aggregation runs by result (ok, error).",
		}, []string{"result"}),
		points: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "semko_aggregate_points_written_total", Help: "Aggregate points written.",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "semko_aggregate_lag_seconds", Help: "How far the aggregates' high-water mark is behind now.",
		}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{j.runs, j.points, j.lag} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return j, nil
}

// Close releases the InfluxDB client of a job that never ran (Run
// releases it on return).
func (j *Job) Close() error {
	j.db.Close()
	return nil
}

// Run runs the job at once and then every Options.Every until ctx ends.
func (j *Job) Run(ctx context.Context) error {
	s, err := gocron.NewScheduler(gocron.WithClock(j.opts.Clock))
	if err != nil {
		return fmt.Errorf("new scheduler: %w", err)
	}
	_, err = s.NewJob(gocron.DurationJob(j.opts.Every),
		gocron.NewTask(func(ctx context.Context) { _ = j.RunOnce(ctx) }),
		append([]gocron.JobOption{
			gocron.WithName("semko-aggregate"),
			gocron.WithSingletonMode(gocron.LimitModeReschedule),
			gocron.WithContext(ctx),
		}, elector.JobOptions(j.opts.Cluster, j.opts.Clock.Now(), j.opts.Every)...)...)
	if err != nil {
		_ = s.Shutdown()
		return fmt.Errorf("schedule aggregate: %w", err)
	}
	s.Start()
	<-ctx.Done()
	err = s.Shutdown()
	j.db.Close()
	if err != nil {
		return fmt.Errorf("stop aggregate: %w", err)
	}
	return nil
}

// RunOnce aggregates what is due now: from the high-water mark (less
// Settle, or less MaxAge when a refold is due) to the current hour's end.
func (j *Job) RunOnce(ctx context.Context) error {
	j.runMu.Lock()
	defer j.runMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, j.opts.Timeout)
	defer cancel()
	n, err := j.run(ctx)
	if err != nil {
		j.runs.WithLabelValues("error").Inc()
		j.log.Warn("aggregate failed", "err", err)
		return err
	}
	j.runs.WithLabelValues("ok").Inc()
	j.points.Add(float64(n))
	return nil
}

func (j *Job) run(ctx context.Context) (int, error) {
	now := j.opts.Clock.Now().UTC()
	st, err := j.load()
	if err != nil {
		return 0, err
	}
	// The current hour is aggregated too, partly: long ranges then reach
	// up to now, and the next run rewrites it.
	end := now.Truncate(time.Hour).Add(time.Hour)
	var from time.Time
	refold := st.Refolded.IsZero() || now.Sub(st.Refolded) >= j.opts.Refold
	switch {
	case st.Done.IsZero():
		if from, err = j.firstPoint(ctx, now.Add(-j.opts.Backfill)); err != nil {
			return 0, err
		}
		if from.IsZero() {
			return 0, nil // nothing to aggregate yet
		}
	case refold:
		from = earlier(st.Done.Add(-j.opts.Settle), now.Add(-j.opts.MaxAge))
	default:
		from = st.Done.Add(-j.opts.Settle)
	}
	from = from.Truncate(time.Hour)
	total := 0
	// A UTC day at a time: its raw points read once, every tier's hours
	// and the day written, then the mark, so an interrupted catch-up
	// resumes where it stopped.
	for day := from.Truncate(24 * time.Hour); day.Before(end); day = day.Add(24 * time.Hour) {
		n, err := j.aggregate(ctx, day, end)
		if err != nil {
			return total, err
		}
		total += n
		if hi := earlier(end, day.Add(24*time.Hour)); hi.After(st.Done) {
			st.Done = hi
			if err := j.save(st); err != nil {
				return total, err
			}
		}
	}
	if refold && !st.Done.IsZero() {
		st.Refolded = now
		if err := j.save(st); err != nil {
			return total, err
		}
	}
	j.lag.Set(max(0, now.Sub(st.Done).Seconds()))
	j.log.Info("aggregates written", "from", from, "to", end, "points", total, "refold", refold)
	return total, nil
}

// firstPoint is the hour of the oldest raw vote or activation after
// since, zero when there is none.
func (j *Job) firstPoint(ctx context.Context, since time.Time) (time.Time, error) {
	var first time.Time
	for _, q := range []string{
		`SELECT first("score") FROM "vote" WHERE time >= ` + ts(since),
		`SELECT first("service_s") FROM "activation" WHERE time >= ` + ts(since),
	} {
		res, err := j.db.Query(ctx, q)
		if err != nil {
			return time.Time{}, fmt.Errorf("find first point: %w", err)
		}
		for _, s := range res {
			for row := range s.Values {
				if t, err := s.Time(row); err == nil && (first.IsZero() || t.Before(first)) {
					first = t
				}
			}
		}
	}
	return first, nil
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func ts(t time.Time) string { return "'" + t.UTC().Format(time.RFC3339Nano) + "'" }

// validVote selects ratings; valid is a tag in old shards and a string
// field in new ones.
const validVote = `("valid"::tag = 'true' OR "valid"::field = 'true')`

// aggregate reads the raw points of the UTC day starting at day (up to
// end) once and writes the hourly and daily points of every tier. A whole
// day is read even when the run starts later in it: the daily points need
// all of its hours, and reading them again costs less than a second
// read of the hourly aggregates.
func (j *Job) aggregate(ctx context.Context, day, end time.Time) (int, error) {
	span := `time >= ` + ts(day) + ` AND time < ` + ts(earlier(end, day.Add(24*time.Hour)))
	f := newFold()
	votes, err := j.db.Query(ctx, `SELECT "score", "satisfied", "negative", "service_s" FROM "vote" WHERE `+validVote+
		` AND `+span+` GROUP BY "`+strings.Join(VoteTags, `", "`)+`"`)
	if err != nil {
		return 0, fmt.Errorf("read votes: %w", err)
	}
	if err := f.votes(votes); err != nil {
		return 0, err
	}
	acts, err := j.db.Query(ctx, `SELECT "service_s", "voted" FROM "activation" WHERE `+span+
		` GROUP BY "`+strings.Join(ActivationTags, `", "`)+`"`)
	if err != nil {
		return 0, fmt.Errorf("read activations: %w", err)
	}
	if err := f.activations(acts); err != nil {
		return 0, err
	}
	return f.write(ctx, j.db)
}

// The integer fields of each aggregate measurement, in the order of the
// sums a fold keeps.
var (
	voteFields = []string{"votes", "score_sum", "satisfied", "negative", "service_s_sum", "service_n",
		"score_1", "score_2", "score_3", "score_4", "score_5"}
	activationFields = []string{"opened", "activations", "voted", "service_s_sum"}
)

// sums are the fields of one aggregate point (voteFields or
// activationFields, by index).
type sums [11]int64

// pointKey names one aggregate point: measurement, tag values, time.
type pointKey struct {
	m    string
	tags string // the tier's tag values joined by NUL
	t    int64
}

// fold adds raw points up into every tier's hourly and daily points and
// the report tier's days.
type fold struct {
	pts   map[pointKey]*sums
	tags  map[pointKey]map[string]string
	order []pointKey
	days  map[reportKey]*ReportDay
	dayOf []reportKey // the order of days
}

// reportKey names a ReportDaily point.
type reportKey struct {
	org, site string
	day       int64
}

func newFold() *fold {
	return &fold{pts: map[pointKey]*sums{}, tags: map[pointKey]map[string]string{}, days: map[reportKey]*ReportDay{}}
}

// report is the ReportDay of the point's site and day.
func (f *fold) report(tags map[string]string, day int64) *ReportDay {
	k := reportKey{tags["org"], tags["site"], day}
	d := f.days[k]
	if d == nil {
		d = &ReportDay{Ops: map[string]*[7]int64{}, Hours: map[int]*[6]int64{}}
		f.days[k] = d
		f.dayOf = append(f.dayOf, k)
	}
	return d
}

// at is d's sums of the operator and the hour, made when missing.
func (d *ReportDay) at(op string, hour int) (*[7]int64, *[6]int64) {
	o, h := d.Ops[op], d.Hours[hour]
	if o == nil {
		o = &[7]int64{}
		d.Ops[op] = o
	}
	if h == nil {
		h = &[6]int64{}
		d.Hours[hour] = h
	}
	return o, h
}

// add adds v to the point of measurement m at t for the tags of keep.
func (f *fold) add(m string, keep []string, all map[string]string, t int64, v *sums, n int) {
	var kb strings.Builder
	for _, k := range keep {
		kb.WriteString(all[k])
		kb.WriteByte(0)
	}
	k := pointKey{m, kb.String(), t}
	p := f.pts[k]
	if p == nil {
		p = &sums{}
		f.pts[k] = p
		tags := make(map[string]string, len(keep))
		for _, tg := range keep {
			if all[tg] != "" {
				tags[tg] = all[tg]
			}
		}
		f.tags[k] = tags
		f.order = append(f.order, k)
	}
	for i := range n {
		p[i] += v[i]
	}
}

// cell reads an integer cell; ok is false for null.
func cell(row []any, i int) (int64, bool, error) {
	if i < 0 || i >= len(row) || row[i] == nil {
		return 0, false, nil
	}
	n, isNum := row[i].(json.Number)
	if !isNum {
		return 0, false, fmt.Errorf("aggregate: %w: %v is not a number", ErrRaw, row[i])
	}
	if v, err := n.Int64(); err == nil {
		return v, true, nil
	}
	x, err := n.Float64()
	if err != nil {
		return 0, false, fmt.Errorf("aggregate: %w: %v", ErrRaw, err)
	}
	return int64(x), true, nil
}

// ErrRaw means a raw point held something other than a number where a
// count or sum was expected.
var ErrRaw = errors.New("unexpected raw value")

// each calls fn for every row of every series with the row's hour, its
// day and its cells in the order of cols.
func each(res []influxdb.Series, cols []string, fn func(tags map[string]string, hour, day int64, v []int64, ok []bool)) error {
	v, ok := make([]int64, len(cols)), make([]bool, len(cols))
	for _, s := range res {
		idx := make([]int, len(cols))
		for i, c := range cols {
			idx[i] = s.Col(c)
		}
		tc := s.Col("time")
		for _, row := range s.Values {
			at, has, err := cell(row, tc)
			if err != nil || !has {
				return fmt.Errorf("aggregate: %w: a row without time", ErrRaw)
			}
			for i := range cols {
				if v[i], ok[i], err = cell(row, idx[i]); err != nil {
					return err
				}
			}
			hour := at - at%int64(time.Hour)
			fn(s.Tags, hour, at-at%int64(24*time.Hour), v, ok)
		}
	}
	return nil
}

func (f *fold) votes(res []influxdb.Series) error {
	return each(res, []string{"score", "satisfied", "negative", "service_s"}, func(tags map[string]string, hour, day int64, v []int64, ok []bool) {
		if !ok[0] {
			return // count("score") would not count it
		}
		var s sums
		s[0], s[1], s[2], s[3] = 1, v[0], v[1], v[2] // votes, score_sum, satisfied, negative
		if ok[3] {
			s[4], s[5] = v[3], 1
		}
		if tags["scale"] != "nps11" && v[0] >= 1 && v[0] <= 5 {
			s[5+v[0]] = 1
		}
		for _, t := range Tiers {
			if t.Hourly {
				f.add(t.Vote(false), t.VoteTags, tags, hour, &s, len(voteFields))
			}
			f.add(t.Vote(true), t.VoteTags, tags, day, &s, len(voteFields))
		}
		if tags["scale"] == "nps11" {
			return // not a keypad rating: reports leave it out
		}
		o, h := f.report(tags, day).at(tags["operator"], int((hour-day)/int64(time.Hour)))
		for i := range 4 { // votes, score sum, satisfied, negative
			o[i] += s[i]
			h[i] += s[i]
		}
		o[4] += s[4]
		if v[0] >= 1 && v[0] <= 5 {
			f.days[reportKey{tags["org"], tags["site"], day}].Scores[v[0]-1]++
		}
	})
}

func (f *fold) activations(res []influxdb.Series) error {
	return each(res, []string{"service_s", "voted"}, func(tags map[string]string, hour, day int64, v []int64, ok []bool) {
		var s sums
		if ok[0] {
			s[0], s[3] = 1, v[0] // opened, service_s_sum
		}
		if ok[1] {
			s[1], s[2] = 1, v[1] // activations (closed), voted
		}
		for _, t := range Tiers {
			if t.Hourly {
				f.add(t.Activation(false), t.ActivationTags, tags, hour, &s, len(activationFields))
			}
			f.add(t.Activation(true), t.ActivationTags, tags, day, &s, len(activationFields))
		}
		o, h := f.report(tags, day).at(tags["operator"], int((hour-day)/int64(time.Hour)))
		o[5], o[6] = o[5]+s[1], o[6]+s[2]
		h[4], h[5] = h[4]+s[1], h[5]+s[2]
	})
}

// write writes every point with all its fields (zeros included), so a
// rewrite replaces a point completely.
func (f *fold) write(ctx context.Context, db *influxdb.Client) (int, error) {
	batch := make([]*write.Point, 0, 5000)
	flush := func(last bool) error {
		if len(batch) == cap(batch) || (last && len(batch) > 0) {
			if err := db.WritePoint(ctx, batch...); err != nil {
				return fmt.Errorf("write aggregates: %w", err)
			}
			batch = batch[:0]
		}
		return nil
	}
	for _, k := range f.order {
		names := voteFields
		if strings.HasPrefix(k.m, "activation") {
			names = activationFields
		}
		p := f.pts[k]
		fields := make(map[string]any, len(names))
		for n, name := range names {
			fields[name] = p[n]
		}
		batch = append(batch, write.NewPoint(k.m, f.tags[k], fields, time.Unix(0, k.t).UTC()))
		if err := flush(false); err != nil {
			return 0, err
		}
	}
	for _, k := range f.dayOf {
		// Maps marshal with sorted keys: the same day gives the same
		// string, so a rewrite is a plain overwrite.
		b, err := json.Marshal(f.days[k])
		if err != nil {
			return 0, fmt.Errorf("encode report day: %w", err)
		}
		tags := map[string]string{}
		for n, v := range map[string]string{"org": k.org, "site": k.site} {
			if v != "" {
				tags[n] = v
			}
		}
		batch = append(batch, write.NewPoint(ReportDaily, tags, map[string]any{ReportField: string(b)}, time.Unix(0, k.day).UTC()))
		if err := flush(false); err != nil {
			return 0, err
		}
	}
	if err := flush(true); err != nil {
		return 0, err
	}
	return len(f.order) + len(f.dayOf), nil
}

// stateLayout numbers the measurements a run writes: 0 (no field) was the
// finest tier alone with hourly points; 1 the tiers; 2 the tiers and the
// report tier (ReportDaily), which the first run of 2 backfills. A mark of another
// layout says nothing about the measurements written now, so the job
// starts over with a backfill (the old `vote_1h` and `activation_1h` are
// left as they are, read by nothing).
const stateLayout = 2

func (j *Job) load() (state, error) {
	var st state
	b, err := os.ReadFile(j.opts.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read aggregate state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		// A damaged mark costs a backfill, not a stop.
		j.log.Warn("aggregate state unreadable, starting over", "file", j.opts.StateFile, "err", err)
		return state{}, nil
	}
	if st.Layout != stateLayout {
		j.log.Info("aggregates of an older layout, backfilling the tiers", "file", j.opts.StateFile, "layout", st.Layout)
		return state{}, nil
	}
	if !st.Done.IsZero() {
		j.done.Store(st.Done.UnixNano())
	}
	return st, nil
}

// save writes the state atomically (temporary file, rename).
func (j *Job) save(st state) error {
	st.Layout = stateLayout
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode aggregate state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(j.opts.StateFile), 0o750); err != nil {
		return fmt.Errorf("write aggregate state: %w", err)
	}
	defer func() {
		if !st.Done.IsZero() {
			j.done.Store(st.Done.UnixNano())
		}
	}()
	tmp := j.opts.StateFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return fmt.Errorf("write aggregate state: %w", err)
	}
	if err := os.Rename(tmp, j.opts.StateFile); err != nil {
		return fmt.Errorf("write aggregate state: %w", err)
	}
	return nil
}
