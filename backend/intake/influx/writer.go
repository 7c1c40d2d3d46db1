package influx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	influxhttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/intake/spool"
	"github.com/semko/semko/internal/influxdb"
)

// Defaults for WriterOptions.
const (
	DefaultBatchSize     = 5000
	DefaultFlushInterval = 200 * time.Millisecond
	DefaultHTTPTimeout   = 30 * time.Second
	DefaultMaxBackoff    = 30 * time.Second

	// maxBatchBytes keeps a request well under InfluxDB 1.8's default
	// max-body-size (25 MB).
	maxBatchBytes = 8 << 20
	minBackoff    = 100 * time.Millisecond
)

// ErrNotReady is returned by Writer.Ready while InfluxDB is not taking the
// backlog.
var ErrNotReady = errors.New("influx writer not ready")

// WriterOptions configures NewWriter.
type WriterOptions struct {
	// URL of InfluxDB, e.g. "http://127.0.0.1:8086". Required.
	URL string
	// Token is a 2.x/3.x API token; for 1.8 "" or "user:password".
	Token string
	// Org is the 2.x organisation; "" for 1.8 and 3.x.
	Org string
	// Bucket is the 2.x bucket, or the database ("semko", or "semko/rp")
	// on 1.8 and 3.x. Required.
	Bucket string
	// BatchSize is the most lines per write. Default DefaultBatchSize.
	BatchSize int
	// FlushInterval is how long a started batch waits to fill up. Default
	// DefaultFlushInterval.
	FlushInterval time.Duration
	// HTTPTimeout bounds one write request. Default DefaultHTTPTimeout.
	HTTPTimeout time.Duration
	// MaxBackoff caps the wait between retries. Default DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Logger; default: discard.
	Logger *slog.Logger
	// Registerer receives the semko_influx_* and semko_spool_* metrics;
	// nil registers none.
	Registerer prometheus.Registerer
}

// recordWriter is the part of the InfluxDB client the writer uses: one
// blocking HTTP write per call (api.WriteAPIBlocking without batching).
type recordWriter interface {
	WriteRecord(ctx context.Context, line ...string) error
}

// WriterStats is a snapshot of a Writer's progress.
type WriterStats struct {
	PointsWritten uint64      // lines InfluxDB accepted
	Batches       uint64      // successful write requests
	Retries       uint64      // failed deliveries that were retried
	Rejected      uint64      // lines InfluxDB refused for good, logged and skipped
	WriteErrors   uint64      // failed write requests, rejections included
	LastError     error       // of the last delivery; nil once one succeeds
	LastErrorAt   time.Time   // when LastError happened
	LastSuccess   time.Time   // of the last successful write
	Backlog       spool.Stats // the spool's state
}

// Writer drains a spool into InfluxDB. A record is committed in the spool
// only once InfluxDB has taken it (or refused it for good), so an outage or
// a crash delays data but never loses it; after a crash the last batch may
// be written again, which InfluxDB absorbs (same series and timestamp).
//
// Each spool record is one or more line-protocol lines (as VoteLine and
// friends produce), without a trailing newline.
type Writer struct {
	sp      *spool.Spool
	opts    WriterOptions
	log     *slog.Logger
	api     recordWriter
	client  *influxdb.Client // nil when api was injected
	metrics *metrics

	mu           sync.Mutex
	stats        WriterStats
	rejectWindow time.Time // start of the current minute of rejection logs
	rejectLogged int       // rejections logged in it
	rejectQuiet  int       // rejections counted but not logged in it
}

// NewWriter returns a writer from sp to the InfluxDB at opts.URL. It does
// not contact InfluxDB: Run does, and retries until it answers.
func NewWriter(sp *spool.Spool, opts WriterOptions) (*Writer, error) {
	if opts.URL == "" || opts.Bucket == "" {
		return nil, errors.New("new influx writer: URL and Bucket are required")
	}
	opts = withDefaults(opts)
	client, err := influxdb.New(influxdb.Options{
		URL: opts.URL, Token: opts.Token, Org: opts.Org, Bucket: opts.Bucket, Timeout: opts.HTTPTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("new influx writer: %w", err)
	}
	w, err := newWriter(sp, client, opts)
	if err != nil {
		return nil, err
	}
	w.client = client
	return w, nil
}

func withDefaults(opts WriterOptions) WriterOptions {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.HTTPTimeout <= 0 {
		opts.HTTPTimeout = DefaultHTTPTimeout
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return opts
}

func newWriter(sp *spool.Spool, api recordWriter, opts WriterOptions) (*Writer, error) {
	w := &Writer{sp: sp, opts: withDefaults(opts), api: api}
	w.log = w.opts.Logger.With("component", "influx-writer")
	m, err := newMetrics(opts.Registerer, sp)
	if err != nil {
		return nil, fmt.Errorf("new influx writer: %w", err)
	}
	w.metrics = m
	return w, nil
}

// Run drains the spool until ctx ends, then returns nil. Only one Run per
// spool may be active; a later Run (after a restart of the writer) starts
// again from the spool's committed cursor. It returns an error only if the
// spool fails to hand out records.
func (w *Writer) Run(ctx context.Context) error {
	if w.client != nil {
		defer w.client.CloseIdleConnections()
	}
	// Records an earlier Run read but never committed come first.
	w.sp.Rewind()
	backoff := time.Duration(0)
	failures := 0 // consecutive failed deliveries
	for {
		batch, err := w.fill(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("influx writer: %w", err)
		}
		if len(batch) == 0 {
			continue
		}
		done, err := w.deliver(ctx, batch)
		if done > 0 {
			// Commit what is done even if the rest failed, so a retry
			// rewrites (and re-rejects) nothing twice.
			if cerr := w.sp.Commit(batch[done-1].ID); cerr != nil && err == nil {
				err = fmt.Errorf("commit spool: %w", cerr)
			}
		}
		if ctx.Err() != nil {
			return nil // what is not committed stays in the spool for the next Run
		}
		if err == nil {
			if failures > 0 {
				w.log.Info("influx writes resumed", "failed_attempts", failures)
			}
			backoff, failures = 0, 0
			continue
		}
		failures++
		backoff = nextBackoff(backoff, w.opts.MaxBackoff)
		wait := backoff
		var herr *influxhttp.Error
		if errors.As(err, &herr) && herr.RetryAfter > 0 {
			wait = max(wait, time.Duration(herr.RetryAfter)*time.Second)
		}
		st := w.sp.Stats()
		w.mu.Lock()
		w.stats.Retries++
		w.mu.Unlock()
		// An outage fails every few seconds for as long as it lasts: say
		// so once loudly, then quietly until writes resume.
		level := slog.LevelDebug
		if failures == 1 {
			level = slog.LevelWarn
		}
		w.log.Log(ctx, level, "influx write failed, will retry until it succeeds", "err", err,
			"attempt", failures, "retry_in", wait.Round(time.Millisecond), "pending_records", st.PendingRecords)
		w.sp.Rewind()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// nextBackoff doubles the previous wait up to limit, with jitter (half
// fixed, half random) so that many backends do not retry in step.
func nextBackoff(prev, limit time.Duration) time.Duration {
	d := min(max(prev*2, minBackoff), limit)
	return d/2 + rand.N(d/2+1)
}

// fill reads a batch: it waits for a first record, then up to
// FlushInterval for the batch to fill. It returns an empty batch when
// ctx ends.
func (w *Writer) fill(ctx context.Context) ([]spool.Record, error) {
	batch, err := w.sp.Read(w.opts.BatchSize, maxBatchBytes)
	if err != nil || len(batch) == w.opts.BatchSize {
		return batch, err
	}
	if len(batch) == 0 {
		select {
		case <-ctx.Done():
			return nil, nil
		case <-w.sp.Notify():
		}
		return nil, nil // the caller loops and reads again
	}
	size := 0
	for _, r := range batch {
		size += len(r.Data)
	}
	timer := time.NewTimer(w.opts.FlushInterval)
	defer timer.Stop()
	for len(batch) < w.opts.BatchSize && size < maxBatchBytes {
		select {
		case <-ctx.Done():
			return nil, nil
		case <-timer.C:
			return batch, nil
		case <-w.sp.Notify():
		}
		more, err := w.sp.Read(w.opts.BatchSize-len(batch), maxBatchBytes-size)
		if err != nil {
			return batch, err
		}
		for _, r := range more {
			size += len(r.Data)
		}
		batch = append(batch, more...)
	}
	return batch, nil
}

// deliver writes recs and returns how many leading records are done:
// written, or refused for good. When InfluxDB refuses some points of a
// batch, it halves the batch until each refused line stands alone, rejects
// that line, and writes the rest. Any other error stops it, for a retry of
// what is left.
func (w *Writer) deliver(ctx context.Context, recs []spool.Record) (int, error) {
	err := w.write(ctx, recs)
	if err == nil {
		return len(recs), nil
	}
	// A limit refuses good points: retry them until it is raised. This
	// comes first because 1.8 words it as a "partial write" too.
	if limitReached(err) {
		return 0, err
	}
	if !badPoints(err) {
		return 0, err
	}
	if len(recs) == 1 {
		w.reject(recs[0], err)
		return 1, nil
	}
	half := len(recs) / 2
	n, err := w.deliver(ctx, recs[:half])
	if err != nil {
		return n, err
	}
	m, err := w.deliver(ctx, recs[half:])
	return half + m, err
}

func (w *Writer) write(ctx context.Context, recs []spool.Record) error {
	lines := make([]string, len(recs))
	points := 0
	for i, r := range recs {
		lines[i] = string(r.Data)
		points += 1 + bytes.Count(r.Data, []byte{'\n'})
	}
	ctx, cancel := context.WithTimeout(ctx, w.opts.HTTPTimeout)
	defer cancel()
	start := time.Now()
	err := w.api.WriteRecord(ctx, lines...)
	w.metrics.observeWrite(time.Since(start))
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.stats.WriteErrors++
		w.stats.LastError = err
		w.stats.LastErrorAt = now
		w.metrics.writeErrors.Inc()
		return fmt.Errorf("write %d lines: %w", len(lines), err)
	}
	w.stats.PointsWritten += uint64(points)
	w.stats.Batches++
	w.stats.LastError = nil
	w.stats.LastSuccess = now
	w.metrics.pointsWritten.Add(float64(points))
	w.metrics.batches.Inc()
	return nil
}

// reject logs a line InfluxDB will never take, and counts it.
func (w *Writer) reject(r spool.Record, err error) {
	points := 1 + bytes.Count(r.Data, []byte{'\n'})
	w.mu.Lock()
	w.stats.Rejected += uint64(points)
	// The refusal was an answer, not an outage.
	w.stats.LastError = nil
	w.mu.Unlock()
	w.metrics.rejected.Add(float64(points))
	const show = 512
	line := string(r.Data)
	if len(line) > show {
		line = line[:show] + "..."
	}
	// A batch of hopeless points (say, all beyond the retention policy)
	// would log thousands of lines: show the first few each minute and
	// count the rest, which the metric has anyway.
	now := time.Now()
	w.mu.Lock()
	if now.Sub(w.rejectWindow) >= time.Minute {
		if w.rejectQuiet > 0 {
			w.log.Error("influxdb rejected more points, not logged one by one", "points", w.rejectQuiet, "since", w.rejectWindow)
		}
		w.rejectWindow, w.rejectLogged, w.rejectQuiet = now, 0, 0
	}
	loud := w.rejectLogged < maxRejectLogs
	if loud {
		w.rejectLogged++
	} else {
		w.rejectQuiet += points
	}
	w.mu.Unlock()
	if loud {
		w.log.Error("influxdb rejected a point, skipping it", "reason", errText(err), "line", line, "spool_seq", r.ID.Seq)
	}
}

// maxRejectLogs bounds the rejected points logged one by one per minute.
const maxRejectLogs = 20

// badPointMarkers are phrases InfluxDB 1.8, 2.x and 3.x use when they
// refuse points themselves rather than the request.
var badPointMarkers = []string{
	"partial write", "unable to parse", "field type conflict", "conflict",
	"beyond retention", "parsing failed", "bad timestamp",
	"invalid field", "invalid tag", "invalid number", "invalid boolean",
}

// limitMarkers are phrases of InfluxDB refusing points for a capacity
// limit rather than for what they are: 1.8's max-series-per-database and
// max-values-per-tag (both "partial write" answers), 2.x Cloud's series
// cardinality and quota refusals, 3.x's table, column and series limits.
// The same points are taken once the limit is raised, so they are an
// outage, never a reason to skip a vote.
var limitMarkers = []string{
	"max-series-per-database", "max-values-per-tag", "cardinality", "quota",
	"series limit", "too many series", "too many tables", "too many columns",
	"table limit", "column limit", "limit exceeded", "exceeded limit", "exceeds limit",
}

// limitReached reports whether err is InfluxDB refusing points for a
// capacity limit (see limitMarkers), whatever status it came with.
func limitReached(err error) bool {
	var herr *influxhttp.Error
	if !errors.As(err, &herr) {
		return false
	}
	msg := strings.ToLower(errText(herr))
	for _, m := range limitMarkers {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// LimitError returns the last write's refusal when it was a capacity limit
// (see limitMarkers) and points are waiting for it; nil otherwise. The
// backend's series check raises an alert from it.
func (w *Writer) LimitError() error {
	st := w.Stats()
	if st.LastError == nil || st.Backlog.PendingRecords == 0 || !limitReached(st.LastError) {
		return nil
	}
	return st.LastError
}

// badPoints reports whether err means InfluxDB refused some points of the
// batch (so resending them is pointless) rather than the request as a whole.
// Auth, missing database, rate limits and server errors are not: they are
// retried forever, since refusing points for them would lose good data.
func badPoints(err error) bool {
	var herr *influxhttp.Error
	if !errors.As(err, &herr) {
		return false
	}
	switch herr.StatusCode {
	case http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return true
	case http.StatusBadRequest:
		msg := strings.ToLower(errText(herr))
		for _, m := range badPointMarkers {
			if strings.Contains(msg, m) {
				return true
			}
		}
	}
	return false
}

// errText is the most telling message of a write error: InfluxDB 1.8 puts
// its reason in the X-Influxdb-Error header, which the client does not
// decode.
func errText(err error) string {
	var herr *influxhttp.Error
	if errors.As(err, &herr) {
		msg := herr.Error()
		if h := herr.Header.Get("X-Influxdb-Error"); h != "" && !strings.Contains(msg, h) {
			msg += ": " + h
		}
		return msg
	}
	return err.Error()
}

// Stats returns a snapshot of the writer's progress.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	st := w.stats
	w.mu.Unlock()
	st.Backlog = w.sp.Stats()
	return st
}

// Ready returns nil when the last write succeeded or nothing is pending;
// otherwise an ErrNotReady error saying how much is waiting and why. Meant
// for /readyz.
func (w *Writer) Ready() error {
	st := w.Stats()
	if st.Backlog.Failed != nil {
		return fmt.Errorf("%w: %w", ErrNotReady, st.Backlog.Failed)
	}
	if st.LastError == nil || st.Backlog.PendingRecords == 0 {
		return nil
	}
	age := time.Duration(0)
	if !st.Backlog.OldestPending.IsZero() {
		age = time.Since(st.Backlog.OldestPending).Round(time.Second)
	}
	cause := "last write failed"
	if limitReached(st.LastError) {
		cause = "InfluxDB refuses new series for a limit (raise it; the backlog drains once it is); last write refused"
	}
	return fmt.Errorf("%w: %d records (%d bytes) pending, oldest %s old; %s at %s: %s",
		ErrNotReady, st.Backlog.PendingRecords, st.Backlog.PendingBytes, age,
		cause, st.LastErrorAt.Format(time.RFC3339), errText(st.LastError))
}
