// Package aggregate writes hourly and daily aggregates of the raw `vote`
// and `activation` points back into InfluxDB, so that figures over months
// and years read thousands of points instead of millions.
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

// Measurements this package writes.
const (
	VoteHourly       = "vote_1h"
	VoteDaily        = "vote_1d"
	ActivationHourly = "activation_1h"
	ActivationDaily  = "activation_1d"
)

// VoteTags and ActivationTags are the tags aggregates keep: those the
// dashboards and reports group or filter by. The device is left out: per
// device figures (health) read raw points over short ranges.
var (
	VoteTags       = []string{"org", "site", "counter", "operator", "service", "channel", "scale"}
	ActivationTags = []string{"org", "site", "counter", "operator", "service"}
)

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
	// A week of UTC days at a time: its hours, then its days from their
	// hours, then the mark, so an interrupted catch-up resumes where it
	// stopped. A week per query keeps a year's backfill to some 600
	// queries.
	for day := from.Truncate(24 * time.Hour); day.Before(end); day = day.Add(chunk) {
		lo, hi := later(from, day), earlier(end, day.Add(chunk))
		n, err := j.aggregate(ctx, lo, hi, day)
		if err != nil {
			return total, err
		}
		total += n
		if hi.After(st.Done) {
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

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func ts(t time.Time) string { return "'" + t.UTC().Format(time.RFC3339Nano) + "'" }

// validVote selects ratings; valid is a tag in old shards and a string
// field in new ones.
const validVote = `("valid"::tag = 'true' OR "valid"::field = 'true')`

func groupBy(every string, tags []string) string {
	return ` GROUP BY time(` + every + `), "` + strings.Join(tags, `", "`) + `" fill(none)`
}

// chunk is how much one round of queries covers.
const chunk = 7 * 24 * time.Hour

// aggregate writes the hourly points of [lo, hi) and then the daily
// points of the chunk starting at day from all their hourly points.
func (j *Job) aggregate(ctx context.Context, lo, hi, day time.Time) (int, error) {
	span := ` AND time >= ` + ts(lo) + ` AND time < ` + ts(hi)
	reads := []read{
		{VoteHourly, VoteTags, `SELECT count("score") AS "votes", sum("score") AS "score_sum", sum("satisfied") AS "satisfied",` +
			` sum("negative") AS "negative", sum("service_s") AS "service_s_sum", count("service_s") AS "service_n"` +
			` FROM "vote" WHERE ` + validVote + span + groupBy("1h", VoteTags)},
		{ActivationHourly, ActivationTags, `SELECT count("service_s") AS "opened", count("voted") AS "activations",` +
			` sum("voted") AS "voted", sum("service_s") AS "service_s_sum" FROM "activation" WHERE time >= ` + ts(lo) + ` AND time < ` + ts(hi) +
			groupBy("1h", ActivationTags)},
	}
	for s := 1; s <= 5; s++ {
		reads = append(reads, read{VoteHourly, VoteTags, fmt.Sprintf(`SELECT count("score") AS "score_%d" FROM "vote" WHERE %s`+
			` AND "scale" != 'nps11' AND "score" = %d%s%s`, s, validVote, s, span, groupBy("1h", VoteTags))})
	}
	n, err := j.readWrite(ctx, reads)
	if err != nil {
		return n, err
	}
	// The day from its hours: sums of sums stay exact.
	dspan := ` WHERE time >= ` + ts(day) + ` AND time < ` + ts(day.Add(chunk))
	var sums []string
	for _, f := range voteFields {
		sums = append(sums, fmt.Sprintf(`sum("%s") AS "%s"`, f, f))
	}
	var asums []string
	for _, f := range activationFields {
		asums = append(asums, fmt.Sprintf(`sum("%s") AS "%s"`, f, f))
	}
	m, err := j.readWrite(ctx, []read{
		{VoteDaily, VoteTags, `SELECT ` + strings.Join(sums, ", ") + ` FROM "` + VoteHourly + `"` + dspan + groupBy("1d", VoteTags)},
		{ActivationDaily, ActivationTags, `SELECT ` + strings.Join(asums, ", ") + ` FROM "` + ActivationHourly + `"` + dspan +
			groupBy("1d", ActivationTags)},
	})
	return n + m, err
}

// The integer fields of each aggregate measurement.
var (
	voteFields = []string{"votes", "score_sum", "satisfied", "negative", "service_s_sum", "service_n",
		"score_1", "score_2", "score_3", "score_4", "score_5"}
	activationFields = []string{"opened", "activations", "voted", "service_s_sum"}
)

type read struct {
	measurement string
	tags        []string
	stmt        string
}

// readWrite runs the reads and writes one point per (measurement, tags,
// time) with the fields of every read merged. Every field of the
// measurement is written (zero when a read had no row), so a rewrite
// replaces a point completely.
func (j *Job) readWrite(ctx context.Context, reads []read) (int, error) {
	type key struct {
		m, tags string
		t       int64
	}
	type pt struct {
		m      string
		tags   map[string]string
		t      time.Time
		fields map[string]any
	}
	pts := map[key]*pt{}
	var order []key
	for _, r := range reads {
		res, err := j.db.Query(ctx, r.stmt)
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", r.measurement, err)
		}
		for _, s := range res {
			tags := map[string]string{}
			var tk strings.Builder
			for _, t := range r.tags {
				if v := s.Tags[t]; v != "" {
					tags[t] = v
				}
				tk.WriteString(s.Tags[t] + "\x00")
			}
			for row := range s.Values {
				at, err := s.Time(row)
				if err != nil {
					continue
				}
				k := key{r.measurement, tk.String(), at.UnixNano()}
				p := pts[k]
				if p == nil {
					p = &pt{m: r.measurement, tags: tags, t: at, fields: map[string]any{}}
					fields := voteFields
					if r.measurement == ActivationHourly || r.measurement == ActivationDaily {
						fields = activationFields
					}
					for _, f := range fields {
						p.fields[f] = int64(0)
					}
					pts[k] = p
					order = append(order, k)
				}
				for _, c := range s.Columns[1:] {
					if v, ok := s.Number(row, c); ok {
						p.fields[c] = int64(v)
					}
				}
			}
		}
	}
	if len(order) == 0 {
		return 0, nil
	}
	batch := make([]*write.Point, 0, 5000)
	for i, k := range order {
		p := pts[k]
		batch = append(batch, write.NewPoint(p.m, p.tags, p.fields, p.t))
		if len(batch) == cap(batch) || i == len(order)-1 {
			if err := j.db.WritePoint(ctx, batch...); err != nil {
				return 0, fmt.Errorf("write aggregates: %w", err)
			}
			batch = batch[:0]
		}
	}
	return len(order), nil
}

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
	if !st.Done.IsZero() {
		j.done.Store(st.Done.UnixNano())
	}
	return st, nil
}

// save writes the state atomically (temporary file, rename).
func (j *Job) save(st state) error {
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
