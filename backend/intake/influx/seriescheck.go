package influx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/elector"
	"github.com/semko/semko/internal/influxdb"
)

// Defaults for SeriesCheckOptions.
const (
	DefaultSeriesCheckEvery = 10 * time.Minute
	DefaultSeriesWarnAt     = 0.8
	// seriesSamples bounds the counts kept for the growth rate: a day at
	// the default interval, more at a shorter one.
	seriesSamples = 144
)

// SeriesState is one run of the series check, as its report hook gets it.
type SeriesState struct {
	// Series is the database's series count; -1 when it could not be read
	// (the other fields still hold).
	Series int64
	// Limit is the configured max-series-per-database (0: none set).
	Limit int64
	// PerDay is the growth over the samples kept, in series a day (0 when
	// fewer than two samples or none since).
	PerDay float64
	// Left is the time to the limit at PerDay; 0 when not growing.
	Left time.Duration
	// Warn is true from WarnAt of the limit on.
	Warn bool
	// Refused is the writer's refusal when InfluxDB rejects points for a
	// limit now (points wait in the spool); nil otherwise.
	Refused error
	Time    time.Time
}

// Share is Series/Limit, 0 without both.
func (s SeriesState) Share() float64 {
	if s.Limit <= 0 || s.Series < 0 {
		return 0
	}
	return float64(s.Series) / float64(s.Limit)
}

// Describe says the state in a sentence, for alerts and logs.
func (s SeriesState) Describe() string {
	var b strings.Builder
	if s.Series >= 0 {
		fmt.Fprintf(&b, "InfluxDB holds %d series", s.Series)
		if s.Limit > 0 {
			fmt.Fprintf(&b, " of a limit of %d (%.0f%%)", s.Limit, 100*s.Share())
		}
		if s.PerDay > 0 {
			fmt.Fprintf(&b, ", growing by %.0f a day", s.PerDay)
			if s.Left > 0 {
				fmt.Fprintf(&b, ": the limit is reached in about %s", humanDuration(s.Left))
			}
		}
	} else {
		b.WriteString("InfluxDB's series count could not be read")
	}
	if s.Refused != nil {
		fmt.Fprintf(&b, "; InfluxDB refuses new series now (%s), the points wait in the spool", errText(s.Refused))
	}
	return b.String()
}

func humanDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%.0f days", d.Hours()/24)
	case d >= 2*time.Hour:
		return fmt.Sprintf("%.0f hours", d.Hours())
	}
	return d.Round(time.Minute).String()
}

// SeriesCheckOptions configures NewSeriesCheck.
type SeriesCheckOptions struct {
	// URL, Token and Database as for the writer (Database: the 1.8
	// database or the 2.x DBRP-mapped one; "db/rp" is cut to "db").
	URL, Token, Database string
	// Limit is max-series-per-database as configured in influxd (0: the
	// count is reported but never warned about).
	Limit int64
	// WarnAt is the share of Limit that warns. Default DefaultSeriesWarnAt.
	WarnAt float64
	// Every is the check interval. Default DefaultSeriesCheckEvery.
	Every time.Duration
	// Writer, when set, reports its limit refusals (Writer.LimitError)
	// with each run.
	Writer interface{ LimitError() error }
	// Report gets every run's state; the backend turns it into alerts.
	// Required.
	Report func(context.Context, SeriesState)
	// HTTPTimeout bounds each request. Default 30 s.
	HTTPTimeout time.Duration
	Clock       clockwork.Clock
	// Cluster, when set (a replica of a cluster: backend/elector's
	// Slots.Every), makes one replica run each period: every replica's
	// schedule starts on a multiple of the period and each run first claims
	// its slot. Nil: this process runs every period itself.
	Cluster    func(period time.Duration) gocron.Locker
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// SeriesCheck watches InfluxDB's series count against the configured
// limit, on a gocron schedule. On 1.8 it reads the database's exact count
// from /debug/vars (numSeries, what max-series-per-database is checked
// against); elsewhere it falls back to SHOW SERIES CARDINALITY (an
// estimate; 3.x answers neither, and then only the writer's refusals are
// reported).
type SeriesCheck struct {
	opts SeriesCheckOptions
	db   string
	log  *slog.Logger
	http *http.Client     // for /debug/vars, which is not a query
	idb  *influxdb.Client // SHOW SERIES CARDINALITY, through the one adapter

	series, limit, perDay prometheus.Gauge

	mu      sync.Mutex
	samples []seriesSample
	sched   gocron.Scheduler
}

type seriesSample struct {
	t time.Time
	n int64
}

// NewSeriesCheck returns a check; Run schedules it.
func NewSeriesCheck(opts SeriesCheckOptions) (*SeriesCheck, error) {
	if opts.URL == "" || opts.Database == "" || opts.Report == nil {
		return nil, errors.New("new series check: URL, Database and Report are required")
	}
	if opts.WarnAt <= 0 || opts.WarnAt > 1 {
		opts.WarnAt = DefaultSeriesWarnAt
	}
	if opts.Every <= 0 {
		opts.Every = DefaultSeriesCheckEvery
	}
	if opts.HTTPTimeout <= 0 {
		opts.HTTPTimeout = 30 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	db, _, _ := strings.Cut(opts.Database, "/")
	idb, err := influxdb.New(influxdb.Options{URL: opts.URL, Token: opts.Token, Bucket: opts.Database, Database: db,
		Timeout: opts.HTTPTimeout})
	if err != nil {
		return nil, fmt.Errorf("new series check: %w", err)
	}
	c := &SeriesCheck{opts: opts, db: db, log: opts.Logger.With("component", "influx-series-check"),
		http: &http.Client{Timeout: opts.HTTPTimeout}, idb: idb,
		series: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "semko", Subsystem: "influx",
			Name: "series", Help: "Series in the InfluxDB database at the last check (-1: unreadable)."}),
		limit: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "semko", Subsystem: "influx",
			Name: "series_limit", Help: "Configured max-series-per-database (influx.max_series; 0: none)."}),
		perDay: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "semko", Subsystem: "influx",
			Name: "series_growth_per_day", Help: "Growth of the series count, in series a day, over the last checks."}),
	}
	c.limit.Set(float64(opts.Limit))
	if opts.Registerer != nil {
		for _, g := range []prometheus.Collector{c.series, c.limit, c.perDay} {
			if err := opts.Registerer.Register(g); err != nil {
				return nil, fmt.Errorf("new series check: %w", err)
			}
		}
	}
	return c, nil
}

// Run runs the check at once and then every Options.Every until ctx ends;
// it returns once a running check has finished.
func (c *SeriesCheck) Run(ctx context.Context) error {
	if err := c.start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	err := c.stop()
	c.idb.Close()
	return err
}

// start schedules the check; stop ends the schedule.
func (c *SeriesCheck) start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sched != nil {
		return errors.New("series check already started")
	}
	s, err := gocron.NewScheduler(gocron.WithClock(c.opts.Clock), gocron.WithLogger(c.log))
	if err != nil {
		return fmt.Errorf("new scheduler: %w", err)
	}
	if _, err := s.NewJob(gocron.DurationJob(c.opts.Every),
		gocron.NewTask(func(ctx context.Context) { c.RunOnce(ctx) }),
		append([]gocron.JobOption{
			gocron.WithName("semko-influx-series-check"),
			gocron.WithSingletonMode(gocron.LimitModeReschedule),
			gocron.WithContext(ctx),
		}, elector.JobOptions(c.opts.Cluster, c.opts.Clock.Now(), c.opts.Every)...)...,
	); err != nil {
		_ = s.Shutdown()
		return fmt.Errorf("schedule series check: %w", err)
	}
	s.Start()
	c.sched = s
	return nil
}

// stop ends the schedule and waits for a running check.
func (c *SeriesCheck) stop() error {
	c.mu.Lock()
	s := c.sched
	c.sched = nil
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.Shutdown()
}

// RunOnce reads the count, updates the growth rate and reports.
func (c *SeriesCheck) RunOnce(ctx context.Context) SeriesState {
	now := c.opts.Clock.Now()
	st := SeriesState{Series: -1, Limit: c.opts.Limit, Time: now}
	if c.opts.Writer != nil {
		st.Refused = c.opts.Writer.LimitError()
	}
	n, err := c.count(ctx)
	if err != nil {
		c.log.Debug("series count not read", "err", err)
	} else {
		st.Series = n
		st.PerDay = c.addSample(now, n)
		if st.PerDay > 0 && st.Limit > n {
			st.Left = time.Duration(float64(st.Limit-n) / st.PerDay * float64(24*time.Hour))
		}
		st.Warn = st.Limit > 0 && float64(n) >= c.opts.WarnAt*float64(st.Limit)
	}
	c.series.Set(float64(st.Series))
	c.perDay.Set(st.PerDay)
	c.opts.Report(ctx, st)
	return st
}

// addSample keeps n and returns the growth per day since the oldest kept
// sample. A drop (series deleted, retention) starts the record afresh.
func (c *SeriesCheck) addSample(t time.Time, n int64) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := len(c.samples); k > 0 && n < c.samples[k-1].n {
		c.samples = c.samples[:0]
	}
	if len(c.samples) == seriesSamples {
		c.samples = append(c.samples[:0], c.samples[1:]...)
	}
	c.samples = append(c.samples, seriesSample{t, n})
	first := c.samples[0]
	span := t.Sub(first.t)
	if span <= 0 {
		return 0
	}
	rate := float64(n-first.n) / span.Hours() * 24
	if math.IsNaN(rate) || rate < 0 {
		return 0
	}
	return rate
}

// count reads the series count: /debug/vars (1.8, exact), else SHOW SERIES
// CARDINALITY (2.x; an estimate).
func (c *SeriesCheck) count(ctx context.Context) (int64, error) {
	n, err := c.debugVars(ctx)
	if err == nil {
		return n, nil
	}
	n, err2 := c.cardinality(ctx)
	if err2 == nil {
		return n, nil
	}
	return 0, fmt.Errorf("series count: /debug/vars: %w; SHOW SERIES CARDINALITY: %w", err, err2)
}

func (c *SeriesCheck) get(ctx context.Context, method, path, body string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.opts.URL, "/")+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.opts.Token != "" {
		if u, p, ok := strings.Cut(c.opts.Token, ":"); ok {
			req.SetBasicAuth(u, p)
		} else {
			req.Header.Set("Authorization", "Token "+c.opts.Token)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	return resp, nil
}

// debugVars reads numSeries of the database from InfluxDB 1.8's expvar
// statistics: the exact count across shards that the inmem index's limit
// is checked against.
func (c *SeriesCheck) debugVars(ctx context.Context) (int64, error) {
	resp, err := c.get(ctx, http.MethodGet, "/debug/vars", "")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return parseDebugVars(resp.Body, c.db)
}

// parseDebugVars finds numSeries of database db in a /debug/vars answer.
// A database with no shard yet has no statistics: 0, nothing written.
func parseDebugVars(r io.Reader, db string) (int64, error) {
	var vars map[string]json.RawMessage
	if err := json.NewDecoder(io.LimitReader(r, maxDebugVars)).Decode(&vars); err != nil {
		return 0, fmt.Errorf("decode /debug/vars: %w", err)
	}
	for _, raw := range vars {
		var st struct {
			Name   string            `json:"name"`
			Tags   map[string]string `json:"tags"`
			Values struct {
				NumSeries *int64 `json:"numSeries"`
			} `json:"values"`
		}
		if json.Unmarshal(raw, &st) != nil || st.Name != "database" || st.Tags["database"] != db || st.Values.NumSeries == nil {
			continue
		}
		if *st.Values.NumSeries < 0 {
			return 0, fmt.Errorf("/debug/vars: numSeries %d of %s", *st.Values.NumSeries, db)
		}
		return *st.Values.NumSeries, nil
	}
	return 0, nil
}

// maxDebugVars bounds what is read of /debug/vars (a few hundred KiB with
// many shards).
const maxDebugVars = 64 << 20

// cardinality runs SHOW SERIES CARDINALITY and sums its rows (1.x/2.x
// answer per shard group, so a series in several groups counts more than
// once: an upper bound, which errs on the side of warning early).
func (c *SeriesCheck) cardinality(ctx context.Context) (int64, error) {
	res, err := c.idb.Query(ctx, "SHOW SERIES CARDINALITY")
	if err != nil {
		return 0, err
	}
	var total int64
	for _, sr := range res {
		if len(sr.Columns) == 0 {
			continue
		}
		col := sr.Columns[len(sr.Columns)-1] // the count, after any start and end time
		for row := range sr.Values {
			n, err := sr.Int(row, col)
			if err != nil {
				return 0, fmt.Errorf("count: %w", err)
			}
			total += n
		}
	}
	return total, nil
}
