package influx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	influxhttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/semko/semko/backend/intake/spool"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/testwait"
	"github.com/semko/semko/protocol"
)

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func openSpool(t testing.TB, dir string) *spool.Spool {
	t.Helper()
	sp, err := spool.Open(dir, spool.Options{Logger: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sp.Close() })
	return sp
}

// runWriter runs w until the test ends (or stop is called) and fails the
// test if Run returns an error.
func runWriter(t testing.TB, w *Writer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

var baseTime = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

func vote(i int) protocol.Vote {
	v := protocol.SampleVote()
	v.Seq = uint64(i + 1)
	v.Time = baseTime.Add(time.Duration(i) * time.Millisecond)
	v.Score = 1 + i%5
	return v
}

func appendVotes(t testing.TB, sp *spool.Spool, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := sp.Append(context.Background(), VoteLine(nil, vote(i), place)); err != nil {
			t.Fatal(err)
		}
	}
}

func newTestWriter(t testing.TB, sp *spool.Spool, srv *influxlocal.Server, reg prometheus.Registerer) *Writer {
	t.Helper()
	w, err := NewWriter(sp, WriterOptions{
		URL: srv.URL(), Bucket: srv.Database(), BatchSize: 500, FlushInterval: 20 * time.Millisecond,
		HTTPTimeout: 5 * time.Second, MaxBackoff: 200 * time.Millisecond, Logger: testLog(t), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func queryInt(t testing.TB, srv *influxlocal.Server, q, col string) int64 {
	t.Helper()
	series, err := srv.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(series) == 0 {
		return 0
	}
	n, err := series[0].Int(0, col)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// storedTag is what InfluxDB holds for a tag value we were given.
func storedTag(s string) string {
	return strings.TrimRight(sanitised(s), `\`)
}

func drained(sp *spool.Spool) func() bool {
	return func() bool { return sp.Stats().PendingRecords == 0 }
}

// TestWriteReadBack writes one point of each measurement, with hostile
// placement values, and reads every tag and field back with InfluxQL.
func TestWriteReadBack(t *testing.T) {
	srv := influxlocal.StartForTest(t)
	sp := openSpool(t, t.TempDir())
	reg := prometheus.NewRegistry()
	w := newTestWriter(t, sp, srv, reg)
	runWriter(t, w)

	for i, h := range hostile {
		v := vote(i)
		v.Device = fmt.Sprintf("kp-%02d", i)
		p := registry.Placement{Org: h.in, Site: "site " + h.in, Counter: "c"}
		if err := sp.Append(context.Background(), VoteLine(nil, v, p)); err != nil {
			t.Fatal(err)
		}
	}
	recs := [][]byte{
		ActivationLine(nil, protocol.SampleActivationRecord(), place),
		HeartbeatLine(nil, protocol.SampleHeartbeat(), place),
		PresenceLine(nil, protocol.SampleStatus(), place),
	}
	if err := sp.Append(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
	testwait.Within(t, 20*time.Second, "spool drained", drained(sp))

	// Hostile tag values arrive exactly as documented.
	series, err := srv.Query(context.Background(), `SELECT score, org, site FROM vote GROUP BY device`)
	if err != nil {
		t.Fatal(err)
	}
	if len(series) != len(hostile) {
		t.Fatalf("%d vote series, want %d", len(series), len(hostile))
	}
	for _, s := range series {
		var i int
		fmt.Sscanf(s.Tags["device"], "kp-%d", &i)
		h := hostile[i]
		org, _ := s.Values[0][s.Col("org")].(string)
		site, _ := s.Values[0][s.Col("site")].(string)
		if org != h.stored || site != storedTag("site "+h.in) {
			t.Errorf("placement %q stored as org %q site %q, want %q", h.in, org, site, h.stored)
		}
	}

	tests := []struct {
		q    string
		want map[string]any // column -> value (numbers as int64/float64, strings)
	}{
		{`SELECT * FROM vote WHERE device = 'kp-00'`, map[string]any{
			"channel": "keypad", "counter": "c", "device": "kp-00", "operator": "op-017", "org": "plain",
			"service": "passport", "site": "site plain", "valid": "true", "score": int64(1), "satisfied": int64(0),
			"negative": int64(1), "latency_ms": int64(2400), "service_s": int64(312), "seq": int64(1),
			"activation": "act-7f3a", "time": baseTime.UnixNano(),
		}},
		{`SELECT * FROM activation`, map[string]any{
			"channel": "keypad", "counter": "c-03", "device": "kp-0001", "operator": "op-017", "org": "acme",
			"service": "passport", "site": "sofia-1", "valid": "true", "service_s": int64(312), "voted": int64(1),
			"closed": int64(1), "window_s": int64(20), "seq": int64(41), "ticket": "A-113", "activation": "act-7f3a",
			"time": protocol.SampleActivationRecord().Time.UnixNano(),
		}},
		{`SELECT * FROM heartbeat`, map[string]any{
			"counter": "c-03", "device": "kp-0001", "fw": "1.4.2", "org": "acme", "site": "sofia-1",
			"uptime_s": int64(86400), "rssi": int64(-61), "temp_c": 31.5, "supply_v": 5.02, "outbox": int64(0),
			"clock_offset_ms": int64(-120), "presses_1": int64(3), "presses_5": int64(77), "errors": int64(0),
			"panel_ok": int64(1), "backlight_ok": int64(1), "config": "org-3",
			"time": protocol.SampleHeartbeat().Time.UnixNano(),
		}},
		{`SELECT * FROM presence`, map[string]any{
			"counter": "c-03", "device": "kp-0001", "org": "acme", "site": "sofia-1", "online": int64(1),
			"bdseq": int64(7), "boot_id": "b-5c1e", "fw": "1.4.2", "time": protocol.SampleStatus().Time.UnixNano(),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.q, func(t *testing.T) {
			series, err := srv.Query(context.Background(), tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(series) != 1 || len(series[0].Values) != 1 {
				t.Fatalf("got %+v, want one point", series)
			}
			s := series[0]
			for col, want := range tc.want {
				var got any
				var err error
				switch want.(type) {
				case int64:
					got, err = s.Int(0, col)
				case float64:
					got, err = s.Float(0, col)
				default:
					got, err = s.Text(0, col)
				}
				if err != nil || got != want {
					t.Errorf("%s = %v (%v), want %v", col, got, err, want)
				}
			}
		})
	}

	st := w.Stats()
	wantPoints := uint64(len(hostile) + 3)
	if st.PointsWritten != wantPoints || st.Rejected != 0 || st.LastError != nil || w.Ready() != nil {
		t.Errorf("stats %+v, ready %v", st, w.Ready())
	}
	if got := testutil.ToFloat64(w.metrics.pointsWritten); got != float64(wantPoints) {
		t.Errorf("semko_influx_points_written_total = %v", got)
	}
	n, err := testutil.GatherAndCount(reg, "semko_spool_pending_records", "semko_spool_append_seconds", "semko_influx_write_seconds")
	if err != nil || n != 3 {
		t.Errorf("gathered %d metrics, %v", n, err)
	}
}

// TestDuplicatesCountOnce: the same vote delivered twice (a device resend,
// a rewritten batch) is one point.
func TestDuplicatesCountOnce(t *testing.T) {
	srv := influxlocal.StartForTest(t)
	sp := openSpool(t, t.TempDir())
	runWriter(t, newTestWriter(t, sp, srv, nil))
	line := VoteLine(nil, vote(7), place)
	if err := sp.Append(context.Background(), line, line); err != nil {
		t.Fatal(err)
	}
	testwait.Within(t, 20*time.Second, "first copies written", drained(sp))
	if err := sp.Append(context.Background(), line); err != nil { // in a later batch
		t.Fatal(err)
	}
	testwait.Within(t, 20*time.Second, "second copy written", drained(sp))
	if n := queryInt(t, srv, `SELECT count(score) FROM vote`, "count"); n != 1 {
		t.Fatalf("count(score) = %d, want 1", n)
	}
}

// TestActivationReportsInAnyOrder: the opening report of an activation
// redelivered after its closing report (a broker restart, a session
// takeover) must not undo the closing report's voted=1.
func TestActivationReportsInAnyOrder(t *testing.T) {
	srv := influxlocal.StartForTest(t)
	sp := openSpool(t, t.TempDir())
	runWriter(t, newTestWriter(t, sp, srv, nil))
	closing := protocol.SampleActivationRecord()
	opening := closing
	opening.Seq, opening.Voted, opening.Closed = closing.Seq-1, false, false
	later := closing
	later.Time, later.ID = closing.Time.Add(time.Minute), "act-later"
	for _, rec := range []protocol.ActivationRecord{opening, closing, later, opening} {
		if err := sp.Append(context.Background(), ActivationLine(nil, rec, place)); err != nil {
			t.Fatal(err)
		}
		testwait.Within(t, 20*time.Second, "report written", drained(sp)) // one batch each: order kept
	}
	if n := queryInt(t, srv, `SELECT count(window_s) FROM activation`, "count"); n != 2 {
		t.Errorf("%d activation points, want 2", n)
	}
	if n := queryInt(t, srv, `SELECT sum(voted) FROM activation`, "sum"); n != 2 {
		t.Errorf("sum(voted) = %d, want 2: a late opening report undid a vote", n)
	}
	if n := queryInt(t, srv, `SELECT count(voted) FROM activation`, "count"); n != 2 {
		t.Errorf("count(voted) = %d, want 2 closed activations", n)
	}
}

// TestOutage: with InfluxDB down, votes wait in the spool (nothing
// committed, Ready says why); once it is back every vote lands once.
func TestOutage(t *testing.T) {
	const n = 2000
	srv := influxlocal.StartForTest(t)
	sp := openSpool(t, t.TempDir())
	w := newTestWriter(t, sp, srv, nil)
	runWriter(t, w)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	appendVotes(t, sp, 0, n)
	testwait.Within(t, 20*time.Second, "a failed write", func() bool { return w.Stats().Retries >= 2 })
	err := w.Ready()
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "2000 records") {
		t.Fatalf("Ready during outage: %v", err)
	}
	if st := sp.Stats(); st.Committed != 0 || st.PendingRecords != n {
		t.Fatalf("spool during outage: %+v", st)
	}
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	testwait.Within(t, 30*time.Second, "backlog written", drained(sp))
	if err := w.Ready(); err != nil {
		t.Fatalf("Ready after recovery: %v", err)
	}
	assertVotes(t, srv, n)
}

// assertVotes checks InfluxDB holds exactly votes 0..n-1, once each.
func assertVotes(t *testing.T, srv *influxlocal.Server, n int) {
	t.Helper()
	series, err := srv.Query(context.Background(), `SELECT seq FROM vote`)
	if err != nil {
		t.Fatal(err)
	}
	if len(series) != 1 || len(series[0].Values) != n {
		got := 0
		if len(series) > 0 {
			got = len(series[0].Values)
		}
		t.Fatalf("%d votes in InfluxDB, want %d", got, n)
	}
	for i := range n {
		seq, _ := series[0].Int(i, "seq")
		ts, _ := series[0].Time(i)
		if seq != int64(i+1) || !ts.Equal(vote(i).Time) {
			t.Fatalf("point %d: seq %d at %v, want vote %d", i, seq, ts, i)
		}
	}
}

// TestRejectedLine: one line InfluxDB refuses (a field type conflict)
// is isolated, logged and counted; the rest of its batch lands.
func TestRejectedLine(t *testing.T) {
	srv := influxlocal.StartForTest(t)
	sp := openSpool(t, t.TempDir())
	reg := prometheus.NewRegistry()
	w := newTestWriter(t, sp, srv, reg)
	// Fix score's type as integer first.
	appendVotes(t, sp, 0, 1)
	stop := runWriter(t, w)
	testwait.Within(t, 20*time.Second, "first vote written", drained(sp))
	stop()

	var batch [][]byte
	for i := 1; i < 100; i++ {
		batch = append(batch, VoteLine(nil, vote(i), place))
		if i == 37 {
			batch = append(batch, []byte(`vote,device=bad score="five" `+fmt.Sprint(baseTime.UnixNano())))
		}
	}
	if err := sp.Append(context.Background(), batch...); err != nil {
		t.Fatal(err)
	}
	runWriter(t, w)
	testwait.Within(t, 20*time.Second, "batch written", drained(sp))
	assertVotes(t, srv, 100)
	st := w.Stats()
	if st.Rejected != 1 || w.Ready() != nil {
		t.Fatalf("stats %+v, ready %v", st, w.Ready())
	}
	if got := testutil.ToFloat64(w.metrics.rejected); got != 1 {
		t.Fatalf("semko_influx_points_rejected_total = %v", got)
	}
}

// TestStopMidBatchAndRestart stops the writer in the middle of the
// backlog, reopens the spool as after a crash, and starts a new writer: no
// vote is lost or doubled.
func TestStopMidBatchAndRestart(t *testing.T) {
	const n = 3000
	srv := influxlocal.StartForTest(t)
	dir := t.TempDir()
	sp, err := spool.Open(dir, spool.Options{Logger: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	appendVotes(t, sp, 0, n)
	w := newTestWriter(t, sp, srv, nil)
	stop := runWriter(t, w)
	testwait.Within(t, 20*time.Second, "some batches written", func() bool { return w.Stats().PointsWritten >= 1000 })
	stop()
	if st := sp.Stats(); st.PendingRecords == 0 {
		t.Log("writer finished before it was stopped; test proves less than intended")
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}

	sp = openSpool(t, dir)
	runWriter(t, newTestWriter(t, sp, srv, nil))
	testwait.Within(t, 20*time.Second, "rest written", drained(sp))
	assertVotes(t, srv, n)
}

// fakeAPI answers writes from a script, for the error paths a real
// InfluxDB will not produce on demand.
type fakeAPI struct {
	mu      sync.Mutex
	answer  func(call int, lines []string) error
	calls   int
	written []string
}

func (f *fakeAPI) WriteRecord(_ context.Context, lines ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if err := f.answer(f.calls, lines); err != nil {
		return err
	}
	f.written = append(f.written, lines...)
	return nil
}

func httpErr(status int, msg string) error {
	return &influxhttp.Error{StatusCode: status, Code: http.StatusText(status), Message: msg, Header: http.Header{}}
}

func TestErrorClassification(t *testing.T) {
	tests := []struct {
		name         string
		answer       func(call int, lines []string) error
		wantRejected uint64
		wantRetries  bool
	}{
		{"server error then ok", func(call int, _ []string) error {
			if call <= 2 {
				return httpErr(503, "unavailable")
			}
			return nil
		}, 0, true},
		{"unauthorized is retried, never dropped", func(call int, _ []string) error {
			if call <= 2 {
				return httpErr(401, "unauthorized access")
			}
			return nil
		}, 0, true},
		{"database not found is retried", func(call int, _ []string) error {
			if call <= 2 {
				return httpErr(404, `database not found: "semko"`)
			}
			return nil
		}, 0, true},
		{"network error", func(call int, _ []string) error {
			if call <= 1 {
				return influxhttp.NewError(errors.New("connection refused"))
			}
			return nil
		}, 0, true},
		{"partial write isolates bad lines", func(_ int, lines []string) error {
			for _, l := range lines {
				if strings.Contains(l, "bad") {
					return httpErr(400, "partial write: field type conflict dropped=1")
				}
			}
			return nil
		}, 2, false},
		{"outage while isolating a bad line", func(call int, lines []string) error {
			if call == 5 {
				return httpErr(503, "unavailable")
			}
			for _, l := range lines {
				if strings.Contains(l, "bad") {
					return httpErr(400, "partial write: field type conflict dropped=1")
				}
			}
			return nil
		}, 2, true},
		{"every line refused", func(int, []string) error {
			return httpErr(400, "partial write: points beyond retention policy dropped=1")
		}, 50, false},
		// Limits refuse good points: every one of them must wait and land
		// once the limit is raised (here: from the fourth call on).
		{"series limit (1.8 partial write) is an outage", func(call int, lines []string) error {
			if call <= 3 {
				return httpErr(400, "partial write: max-series-per-database limit exceeded: (10) dropped=15")
			}
			return nil
		}, 0, true},
		{"values-per-tag limit is an outage", func(call int, _ []string) error {
			if call <= 3 {
				return httpErr(400, `partial write: max-values-per-tag limit exceeded (100000/100000): measurement="vote" tag="operator" value="op-9" dropped=1`)
			}
			return nil
		}, 0, true},
		{"2.x cardinality refusal is an outage", func(call int, _ []string) error {
			if call <= 3 {
				return httpErr(422, "failure writing points: series cardinality limit reached")
			}
			return nil
		}, 0, true},
		{"3.x column limit is an outage", func(call int, _ []string) error {
			if call <= 3 {
				return httpErr(422, "partial write of line protocol occurred: too many columns in table")
			}
			return nil
		}, 0, true},
		{"bad request that is not about points is retried", func(call int, _ []string) error {
			if call <= 2 {
				return httpErr(400, "missing bucket")
			}
			return nil
		}, 0, true},
		{"unprocessable (2.x)", func(_ int, lines []string) error {
			for _, l := range lines {
				if strings.Contains(l, "bad") {
					return httpErr(422, "failure writing points")
				}
			}
			return nil
		}, 2, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp := openSpool(t, t.TempDir())
			var recs [][]byte
			for i := range 50 {
				line := fmt.Sprintf("m v=%di %d", i, i)
				if i == 10 || i == 11 {
					line = fmt.Sprintf("m,bad=1 v=%di %d", i, i)
				}
				recs = append(recs, []byte(line))
			}
			if err := sp.Append(context.Background(), recs...); err != nil {
				t.Fatal(err)
			}
			api := &fakeAPI{answer: tc.answer}
			w, err := newWriter(sp, api, WriterOptions{BatchSize: 50, FlushInterval: time.Millisecond,
				MaxBackoff: 5 * time.Millisecond, Logger: testLog(t)})
			if err != nil {
				t.Fatal(err)
			}
			runWriter(t, w)
			testwait.Within(t, 10*time.Second, "spool drained", drained(sp))
			st := w.Stats()
			if st.Rejected != tc.wantRejected || (st.Retries > 0) != tc.wantRetries {
				t.Fatalf("stats %+v", st)
			}
			api.mu.Lock()
			defer api.mu.Unlock()
			if len(api.written) != 50-int(tc.wantRejected) {
				t.Fatalf("%d lines written, want %d", len(api.written), 50-tc.wantRejected)
			}
		})
	}
}

// TestLimitKeepsPoints: while InfluxDB refuses points for its series limit
// the writer skips nothing, says why in Ready and LimitError, and writes
// every point once the limit is raised.
func TestLimitKeepsPoints(t *testing.T) {
	sp := openSpool(t, t.TempDir())
	for i := range 20 {
		if err := sp.Append(context.Background(), fmt.Appendf(nil, "m,k=%d v=%di %d", i, i, i)); err != nil {
			t.Fatal(err)
		}
	}
	var raised atomic.Bool
	api := &fakeAPI{answer: func(_ int, lines []string) error {
		if !raised.Load() {
			return httpErr(400, "partial write: max-series-per-database limit exceeded: (10) dropped=10")
		}
		return nil
	}}
	w, err := newWriter(sp, api, WriterOptions{BatchSize: 50, FlushInterval: time.Millisecond,
		MaxBackoff: 5 * time.Millisecond, Logger: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	runWriter(t, w)
	testwait.Within(t, 10*time.Second, "a few refused attempts", func() bool { return w.Stats().Retries >= 3 })
	if err := w.LimitError(); err == nil || !strings.Contains(errText(err), "max-series-per-database") {
		t.Fatalf("LimitError = %v during the limit", err)
	}
	if err := w.Ready(); err == nil || !strings.Contains(err.Error(), "limit") || !strings.Contains(err.Error(), "20 records") {
		t.Fatalf("Ready = %v during the limit, want the limit and the 20 records", err)
	}
	if st := w.Stats(); st.Rejected != 0 || st.Backlog.PendingRecords != 20 {
		t.Fatalf("during the limit: %+v", st)
	}
	raised.Store(true)
	testwait.Within(t, 10*time.Second, "spool drained", drained(sp))
	if err := w.LimitError(); err != nil {
		t.Fatalf("LimitError = %v after the drain", err)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.written) != 20 || w.Stats().Rejected != 0 {
		t.Fatalf("%d lines written, %d rejected; want 20, 0", len(api.written), w.Stats().Rejected)
	}
}
