package influxlocal

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const points = `vote,device=kp-1,site=s1 score=5i,satisfied=1i 1700000000000000000
vote,device=kp-2,site=s1 score=2i,satisfied=0i 1700000001000000000
`

func write(t *testing.T, s *Server, lines string) {
	t.Helper()
	resp, err := http.Post(s.URL()+"/write?db="+s.Database()+"&precision=ns", "text/plain", strings.NewReader(lines))
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("write: HTTP %s: %s", resp.Status, b)
	}
}

// checkPoints reads back exactly the two points written above.
func checkPoints(t *testing.T, s *Server) {
	t.Helper()
	series, err := s.Query(t.Context(), `SELECT score, satisfied, device FROM vote ORDER BY time`)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if len(series) != 1 || series[0].Name != "vote" || len(series[0].Values) != 2 {
		t.Fatalf("got %+v, want one vote series with 2 rows", series)
	}
	want := []struct {
		ns            int64
		score, satisf int64
		device        string
	}{{1700000000000000000, 5, 1, "kp-1"}, {1700000001000000000, 2, 0, "kp-2"}}
	sr := series[0]
	for row, w := range want {
		ts, err1 := sr.Time(row)
		score, err2 := sr.Int(row, "score")
		sat, err3 := sr.Int(row, "satisfied")
		dev, err4 := sr.Text(row, "device")
		for _, err := range []error{err1, err2, err3, err4} {
			if err != nil {
				t.Fatalf("row %d: %v", row, err)
			}
		}
		if ts.UnixNano() != w.ns || score != w.score || sat != w.satisf || dev != w.device {
			t.Errorf("row %d = (%d, %d, %d, %s), want %+v", row, ts.UnixNano(), score, sat, dev, w)
		}
	}
	// Aggregates come back as numbers too, and tags from GROUP BY.
	series, err = s.Query(t.Context(), `SELECT count(score) FROM vote GROUP BY device`)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if len(series) != 2 || series[0].Tags["device"] != "kp-1" || series[1].Tags["device"] != "kp-2" {
		t.Fatalf("GROUP BY device: got %+v", series)
	}
	if n, err := series[1].Int(0, "count"); err != nil || n != 1 {
		t.Errorf("count for kp-2 = %d, %v; want 1", n, err)
	}
}

func TestWriteReadRestartKill(t *testing.T) {
	t.Parallel()
	s := StartForTest(t)
	url := s.URL()
	write(t, s, points)
	checkPoints(t, s)

	if err := s.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s.URL() != url {
		t.Fatalf("URL changed across Restart: %s -> %s", url, s.URL())
	}
	checkPoints(t, s)

	// An outage: stopped, queries fail; Restart brings it back at the same URL.
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := s.Query(t.Context(), "SHOW DATABASES"); err == nil {
		t.Fatal("query succeeded while influxd was stopped")
	}
	if err := s.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkPoints(t, s)

	// A crash right after an acknowledged write: the fsynced WAL has it.
	write(t, s, "vote,device=kp-3,site=s1 score=4i,satisfied=1i 1700000002000000000\n")
	s.Kill()
	s.Kill() // idempotent
	s2, err := Start(t.Context(), Options{Dir: s.Dir(), Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s2.Stop(); err != nil {
			t.Error(err)
		}
	})
	series, err := s2.Query(t.Context(), `SELECT count(score) FROM vote`)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := series[0].Int(0, "count"); err != nil || n != 3 {
		t.Fatalf("count after kill = %d, %v; want 3", n, err)
	}
}

// TestRestartWhileUsed restarts under concurrent use (the race detector
// checks URL and Query against Restart) and reports a crash on Stop.
func TestRestartWhileUsed(t *testing.T) {
	t.Parallel()
	s := StartForTest(t)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		for ctx.Err() == nil {
			_, _ = s.Query(ctx, "SHOW DATABASES") // fails while down: fine
		}
	})
	for range 3 {
		if err := s.Restart(t.Context()); err != nil {
			t.Fatal(err)
		}
	}

	// influxd dying on its own shows up in Stop's error.
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	p.signal(syscall.SIGKILL)
	<-p.done
	if err := s.Stop(); err == nil || !strings.Contains(err.Error(), "already exited") {
		t.Fatalf("Stop after a crash: err = %v", err)
	}
}

func TestQueryErrors(t *testing.T) {
	t.Parallel()
	s := StartForTest(t)
	if _, err := s.Query(t.Context(), "SELEKT 1"); err == nil || !strings.Contains(err.Error(), "error parsing query") {
		t.Errorf("bad syntax: err = %v", err)
	}
	if _, err := Query(t.Context(), s.URL(), "nope", "SELECT * FROM vote"); err == nil || !strings.Contains(err.Error(), "database not found") {
		t.Errorf("missing database: err = %v", err)
	}
	// No data is no series, not an error.
	if series, err := s.Query(t.Context(), "SELECT * FROM vote"); err != nil || len(series) != 0 {
		t.Errorf("empty: %+v, %v", series, err)
	}
}

func TestStartPortTaken(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err = Start(ctx, Options{Dir: t.TempDir(), HTTPAddr: l.Addr().String(),
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err == nil || !strings.Contains(err.Error(), "another InfluxDB running?") {
		t.Fatalf("err = %v, want a clear message", err)
	}
	t.Logf("as expected: %v", err)
}

// TestBindFailureDetected checks that a port lost to another process between
// picking and binding is recognised (and so retried with fresh ports).
func TestBindFailureDetected(t *testing.T) {
	t.Parallel()
	bin, err := Ensure(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	httpAddr, err := freeAddr("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &Server{bin: bin, dir: dir, db: "semko", logPath: filepath.Join(dir, "influxd.log"),
		httpAddr: httpAddr, log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	err = s.startOnce(t.Context(), httpAddr, taken.Addr().String())
	if !errors.Is(err, errAddrInUse) || !strings.Contains(err.Error(), "--- tail of") {
		t.Fatalf("err = %v, want errAddrInUse with the log tail", err)
	}
}

// TestEnsureBuildsOnce builds influxd into a fresh directory from two
// goroutines at once: one builds, the other waits on the lock and reuses it.
// With a warm Go build cache this takes seconds.
func TestEnsureBuildsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds influxd; skipped with -short")
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bin", "influxd")
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { errs[i] = influxd.EnsureAt(t.Context(), log, path) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), `msg="built influxd"`); n != 1 {
		t.Errorf("built %d times, want 1; log:\n%s", n, logs.String())
	}
	if out, err := exec.Command(path, "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "InfluxDB") {
		t.Errorf("%s version: %v %s", path, err, out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// TestSeriesLimit: the limit options reach influxd (inmem enforces them),
// and SetLimits takes effect at the next Restart on the same data.
func TestSeriesLimit(t *testing.T) {
	s := StartForTestWith(t, Options{IndexVersion: "inmem", MaxSeriesPerDatabase: 3})
	post := func(lines string) (int, string) {
		resp, err := http.Post(s.URL()+"/write?db="+s.Database(), "text/plain", strings.NewReader(lines))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	four := "m,k=1 v=1i 1\nm,k=2 v=1i 1\nm,k=3 v=1i 1\nm,k=4 v=1i 1\n"
	if code, body := post(four); code != http.StatusBadRequest || !strings.Contains(body, "max-series-per-database limit exceeded") {
		t.Fatalf("4 series past a limit of 3: %d %s", code, body)
	}
	s.SetLimits(10)
	if err := s.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code, body := post(four); code != http.StatusNoContent {
		t.Fatalf("4 series after raising the limit to 10: %d %s", code, body)
	}
	if _, err := Start(t.Context(), Options{Dir: t.TempDir(), IndexVersion: "tsi2"}); err == nil {
		t.Fatal("index version tsi2 accepted")
	}

	// InfluxDB 1.8.10 checks the limit only in its in-memory index: with
	// TSI it is not enforced (deploy/influxdb/README.md, "Series").
	tsi := StartForTestWith(t, Options{IndexVersion: "tsi1", MaxSeriesPerDatabase: 3})
	resp, err := http.Post(tsi.URL()+"/write?db="+tsi.Database(), "text/plain", strings.NewReader(four))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("tsi1 with a limit of 3 refused 4 series: %s (1.8 was not expected to enforce it with TSI)", resp.Status)
	}
}
