package rollup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// WarmUp is how often the job runs until its first run that writes
// figures.
const WarmUp = time.Minute

// Measurement is the name of the points this package writes.
const Measurement = "rollup"

// Defaults for zero Options fields.
const (
	DefaultEvery       = 5 * time.Minute
	DefaultWindow      = 30 * 24 * time.Hour
	DefaultPriorWeight = 20
	defaultTimeout     = time.Minute
)

// Errors returned by the Job.
var (
	// ErrOptions means New was given options that cannot work.
	ErrOptions = errors.New("invalid rollup options")
	// ErrStarted is returned by Run on a job that is already running.
	ErrStarted = errors.New("rollup job already started")
)

// Options configures a Job.
type Options struct {
	// URL of InfluxDB (1.8, 2.x or 3.x). Required.
	URL string
	// Token: 2.x/3.x API token with read and write access; for 1.8
	// "user:password" or empty.
	Token string
	// Org is the 2.x organisation; empty for 1.8 and 3.x.
	Org string
	// Bucket receives the rollup points (1.8: "semko" or "semko/autogen";
	// 3.x: the database). Required.
	Bucket string
	// Database is what InfluxQL reads (1.8 and 3.x: the database; 2.x: the
	// DBRP-mapped database name). Default: Bucket up to any "/".
	Database string
	// Every is how often Start runs the job. Default DefaultEvery.
	Every time.Duration
	// Window is the look-back period of every figure. Default DefaultWindow.
	Window time.Duration
	// PriorWeight (m) is how many votes' worth of the overall share each
	// entity starts with: an entity's shrunk share is
	// (satisfied + m*prior) / (votes + m). Default DefaultPriorWeight.
	PriorWeight float64
	// Clock drives the scheduler and stamps the points. Default the real one.
	Clock clockwork.Clock
	// Cluster, when set (a replica of a cluster: backend/elector's
	// Slots.Every), makes one replica run each period: every replica's
	// schedule starts on a multiple of the period and each run first claims
	// its slot. Nil: this process runs every period itself.
	Cluster func(period time.Duration) gocron.Locker
	// Location is the time zone of the hour-of-week figures (managers read
	// "Monday 09:00" in their own zone). Default time.Local.
	Location *time.Location
	// Timeout bounds one run (its queries and the write). Default one minute.
	Timeout time.Duration
	// Logger receives one line per run. Default: discard.
	Logger *slog.Logger
	// Registerer, if set, receives the job's metrics.
	Registerer prometheus.Registerer
}

// Job computes and writes the rollup points. RunOnce may be called
// concurrently with a running schedule; the scheduler never overlaps its
// own runs.
type Job struct {
	opts   Options
	window string // the window tag, e.g. "30d"
	log    *slog.Logger
	db     *influxdb.Client // writes the points, reads the votes (InfluxQL)

	runs     *prometheus.CounterVec
	lastOK   prometheus.Gauge
	duration prometheus.Histogram
	points   prometheus.Counter

	// wrote is set once a run wrote figures: until then a fresh install
	// (no votes yet at start) is retried every WarmUp, not every Every.
	wrote atomic.Bool

	mu    sync.Mutex // guards sched
	sched gocron.Scheduler
}

// New checks opts and prepares a job; nothing is contacted yet.
func New(opts Options) (*Job, error) {
	if opts.URL == "" || opts.Bucket == "" {
		return nil, fmt.Errorf("%w: URL and Bucket are required", ErrOptions)
	}
	if opts.Every < 0 || opts.Window < 0 || opts.PriorWeight < 0 || opts.Timeout < 0 {
		return nil, fmt.Errorf("%w: Every, Window, PriorWeight and Timeout must not be negative", ErrOptions)
	}
	if opts.Database == "" {
		opts.Database, _, _ = strings.Cut(opts.Bucket, "/")
	}
	opts.Every = cmp.Or(opts.Every, DefaultEvery)
	opts.Window = cmp.Or(opts.Window, DefaultWindow)
	opts.PriorWeight = cmp.Or(opts.PriorWeight, DefaultPriorWeight)
	opts.Timeout = cmp.Or(opts.Timeout, defaultTimeout)
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	db, err := influxdb.New(influxdb.Options{
		URL: opts.URL, Token: opts.Token, Org: opts.Org, Bucket: opts.Bucket, Database: opts.Database,
		Timeout: opts.Timeout,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOptions, err)
	}
	j := &Job{
		opts:   opts,
		window: WindowTag(opts.Window),
		log:    opts.Logger.With("job", "rollup"),
		db:     db,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "semko_rollup_runs_total", Help: "Rollup runs by result (ok, error).",
		}, []string{"result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "semko_rollup_last_success_timestamp_seconds", Help: "When the last rollup run succeeded.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "semko_rollup_duration_seconds", Help: "How long one rollup run took.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 8),
		}),
		points: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "semko_rollup_points_written_total", Help: "Rollup points written.",
		}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{j.runs, j.lastOK, j.duration, j.points} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return j, nil
}

// WindowTag renders a window as the rollup's window tag: whole days as
// "30d", whole hours as "12h", anything else as Go prints it.
func WindowTag(d time.Duration) string {
	switch {
	case d > 0 && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d > 0 && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// RunOnce computes every figure over the window ending now (on the job's
// clock) and writes them. Nothing is written if a read fails.
func (j *Job) RunOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, j.opts.Timeout)
	defer cancel()
	begin := time.Now() // wall time, for the duration metric only
	now := j.opts.Clock.Now().UTC()
	n, err := j.run(ctx, now)
	j.duration.Observe(time.Since(begin).Seconds())
	if err != nil {
		j.runs.WithLabelValues("error").Inc()
		j.log.Warn("rollup failed", "err", err)
		return err
	}
	j.runs.WithLabelValues("ok").Inc()
	j.lastOK.SetToCurrentTime()
	j.points.Add(float64(n))
	if n > 0 {
		j.wrote.Store(true)
	}
	j.log.Info("rollup written", "points", n, "window", j.window, "at", now)
	return nil
}

func (j *Job) run(ctx context.Context, now time.Time) (int, error) {
	cells, err := j.read(ctx, now)
	if err != nil {
		return 0, err
	}
	hours, err := j.readHours(ctx, now)
	if err != nil {
		return 0, err
	}
	figs := compute(cells, j.opts.PriorWeight)
	pts := make([]*write.Point, 0, len(figs)+len(hours))
	for _, f := range figs {
		pts = append(pts, write.NewPoint(Measurement, f.tags(j.window), f.fields(), now))
	}
	for _, h := range hours {
		pts = append(pts, write.NewPoint(Measurement, h.tags(j.window), h.fields(), now))
	}
	if len(pts) == 0 {
		return 0, nil
	}
	if err := j.db.WritePoint(ctx, pts...); err != nil {
		return 0, fmt.Errorf("write rollup: %w", err)
	}
	return len(pts), nil
}

// The raw cells are read grouped by the four identifying tags; every level
// is summed from them in Go, so one query per measurement serves all.
const groupBy = ` GROUP BY "org", "site", "counter", "operator"`

// span is the WHERE condition of the window ending at now.
func (j *Job) span(now time.Time) string {
	return fmt.Sprintf(`time > '%s' AND time <= '%s'`,
		now.Add(-j.opts.Window).Format(time.RFC3339Nano), now.Format(time.RFC3339Nano))
}

// readHours reads hourly keypad ratings per organisation and folds them
// into hour-of-week cells in Options.Location. InfluxQL cannot group by
// hour of day or weekday, so the dashboards' heatmap reads these.
func (j *Job) readHours(ctx context.Context, now time.Time) ([]hourFigure, error) {
	res, err := j.db.Query(ctx, `SELECT count("score") AS "n", sum("satisfied") AS "sat" FROM "vote"`+
		` WHERE ("valid"::tag = 'true' OR "valid"::field = 'true') AND "scale" != 'nps11' AND `+j.span(now)+` GROUP BY time(1h), "org" fill(none)`)
	if err != nil {
		return nil, fmt.Errorf("read hours: %w", err)
	}
	type key struct {
		org           string
		weekday, hour int
	}
	cells := map[key]*tally{}
	for _, s := range res {
		for row := range s.Values {
			ns, ok := s.Number(row, "time")
			n, _ := s.Number(row, "n")
			if !ok || n == 0 {
				continue
			}
			sat, _ := s.Number(row, "sat")
			at := time.Unix(0, int64(ns)).In(j.opts.Location)
			wd := int(at.Weekday()+6)%7 + 1 // ISO: Monday 1 .. Sunday 7
			for _, org := range []string{s.Tags["org"], ""} {
				k := key{org, wd, at.Hour()}
				if cells[k] == nil {
					cells[k] = &tally{}
				}
				cells[k].votes += int64(n)
				cells[k].satisfied += int64(sat)
			}
		}
	}
	out := make([]hourFigure, 0, len(cells))
	for k, t := range cells {
		out = append(out, hourFigure{org: k.org, weekday: k.weekday, hour: k.hour, votes: t.votes, satisfied: t.satisfied})
	}
	return out, nil
}

// read runs the three InfluxQL reads and merges them into cells.
func (j *Job) read(ctx context.Context, now time.Time) (map[entity]tally, error) {
	span := j.span(now)
	reads := []struct {
		name string
		stmt string
		add  func(*tally, influxdb.Series)
	}{
		{"votes", `SELECT count("score") AS "n", sum("satisfied") AS "sat" FROM "vote"` +
			` WHERE ("valid"::tag = 'true' OR "valid"::field = 'true') AND "scale" != 'nps11' AND ` + span + groupBy,
			func(t *tally, s influxdb.Series) {
				t.votes += int64(num(s, "n"))
				t.satisfied += int64(num(s, "sat"))
			}},
		{"activations", `SELECT count("voted") AS "n", sum("voted") AS "voted" FROM "activation"` +
			` WHERE ` + span + groupBy,
			func(t *tally, s influxdb.Series) {
				t.activations += int64(num(s, "n"))
				t.voted += int64(num(s, "voted"))
			}},
		// On the NPS scale "satisfied" marks promoters and "negative"
		// detractors (see protocol.Scale).
		{"nps", `SELECT count("score") AS "n", sum("satisfied") AS "pro", sum("negative") AS "det" FROM "vote"` +
			` WHERE ("valid"::tag = 'true' OR "valid"::field = 'true') AND "scale" = 'nps11' AND ` + span + groupBy,
			func(t *tally, s influxdb.Series) {
				t.npsVotes += int64(num(s, "n"))
				t.promoters += int64(num(s, "pro"))
				t.detractors += int64(num(s, "det"))
			}},
	}
	cells := map[entity]tally{}
	for _, r := range reads {
		res, err := j.db.Query(ctx, r.stmt)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", r.name, err)
		}
		for _, s := range res {
			e := entity{org: s.Tags["org"], site: s.Tags["site"], counter: s.Tags["counter"], operator: s.Tags["operator"]}
			t := cells[e]
			r.add(&t, s)
			cells[e] = t
		}
	}
	return cells, nil
}

// num sums a column over a series' rows (one row per series here, since
// the reads have no GROUP BY time); nulls count as zero.
func num(s influxdb.Series, col string) float64 {
	var sum float64
	for row := range s.Values {
		if v, ok := s.Number(row, col); ok {
			sum += v
		}
	}
	return sum
}

// Run runs the job at once and then every Options.Every on its clock,
// never overlapping itself (a run still going when the next is due pushes
// that one to the following slot), until ctx ends. It returns once a
// running job has returned, with the InfluxDB client released.
func (j *Job) Run(ctx context.Context) error {
	if err := j.start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return j.Close()
}

// start schedules the job; stop ends it.
func (j *Job) start(ctx context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.sched != nil {
		return ErrStarted
	}
	s, err := gocron.NewScheduler(gocron.WithClock(j.opts.Clock))
	if err != nil {
		return fmt.Errorf("new scheduler: %w", err)
	}
	_, err = s.NewJob(
		gocron.DurationJob(j.opts.Every),
		// RunOnce logs and counts its own failures; the scheduler just
		// tries again at the next slot.
		gocron.NewTask(func(ctx context.Context) { _ = j.RunOnce(ctx) }),
		append([]gocron.JobOption{
			gocron.WithName("semko-rollup"),
			gocron.WithSingletonMode(gocron.LimitModeReschedule),
			gocron.WithContext(ctx),
		}, elector.JobOptions(j.opts.Cluster, j.opts.Clock.Now(), j.opts.Every)...)...,
	)
	if err != nil {
		_ = s.Shutdown()
		return fmt.Errorf("schedule rollup: %w", err)
	}
	if j.opts.Cluster != nil {
		// The warm-up reads this process's own "wrote" flag: in a cluster
		// the replica that runs a slot is not always this one, so the
		// warm-up would run beside the elected runs. The first slot comes
		// within Every instead.
		s.Start()
		j.sched = s
		return nil
	}
	// The dashboards' rankings read only these points: until a run has
	// written some (a fresh start, before the first votes), try again
	// every WarmUp rather than leave them empty for a whole Every.
	_, err = s.NewJob(
		gocron.DurationJob(min(WarmUp, j.opts.Every)),
		gocron.NewTask(func(ctx context.Context) {
			if !j.wrote.Load() {
				_ = j.RunOnce(ctx)
			}
		}),
		gocron.WithName("semko-rollup-warm-up"),
		gocron.WithSingletonMode(gocron.LimitModeReschedule),
		gocron.WithContext(ctx),
	)
	if err != nil {
		_ = s.Shutdown()
		return fmt.Errorf("schedule rollup warm-up: %w", err)
	}
	s.Start()
	j.sched = s
	return nil
}

// stop ends the schedule and waits for a running job to return. The job
// may be started again.
func (j *Job) stop() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.sched == nil {
		return nil
	}
	err := j.sched.Shutdown()
	j.sched = nil
	if err != nil {
		return fmt.Errorf("stop rollup: %w", err)
	}
	return nil
}

// Close stops the job and releases the InfluxDB client's idle connections
// (Run does it on return; Close is for a job that never ran).
func (j *Job) Close() error {
	err := j.stop()
	j.db.Close()
	return err
}
