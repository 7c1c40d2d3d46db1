package backend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/edge"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/firmware-sim/keypad"
	"github.com/semko/semko/internal/influxlocal"
)

// The set-up the end-to-end tests share: a backend config on loopback, the
// backend run until the test ends, edges on simulated keypads, and the
// helpers that ask the API and InfluxDB what arrived.

// testToken is the API token newTestConfig sets.
const testToken = "test-token"

// newTestConfig returns the config of a backend listening for MQTT and HTTP
// on free loopback ports, with the API token testToken, its data dir and
// fleet file in a fresh temporary directory, and model's fleet written
// there. InfluxDB is db, flushed every 50 ms; with db nil it is an address
// where nothing listens, so points wait in the spool. Tests change the
// returned config for what they exercise (TLS, an external broker, limits).
func newTestConfig(t *testing.T, model *fleet.Model, db *influxlocal.Server) backend.Config {
	t.Helper()
	dir := t.TempDir()
	cfg := backend.DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "backend")
	cfg.FleetFile = filepath.Join(dir, "fleet.yaml")
	cfg.MQTT.Addr = "127.0.0.1:0"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.Token = testToken
	if db != nil {
		cfg.Influx.URL = db.URL()
		cfg.Influx.FlushInterval = 50 * time.Millisecond
	} else {
		cfg.Influx.URL = "http://127.0.0.1:1"
	}
	if err := model.WriteFleetFile(cfg.FleetFile, broker.HashSecret); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runBackend runs a backend with cfg until the test ends, and waits until
// it has started; a Run error fails the test.
func runBackend(t *testing.T, cfg backend.Config) *backend.App {
	t.Helper()
	app := newApp(t, cfg, testLogger(t))
	startApp(t, app)
	return app
}

// newApp is backend.New, failing the test on error. Run it with startApp.
func newApp(t *testing.T, cfg backend.Config, log *slog.Logger) *backend.App {
	t.Helper()
	app, err := backend.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	return app
}

// startApp runs app and waits until it has started. stop ends Run and
// returns its error, once; later calls return nil. If the test has not
// called stop, its end does, and a Run error then fails the test.
func startApp(t *testing.T, app *backend.App) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	var once sync.Once
	stop = func() error {
		var err error
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("backend run: %v", err)
		}
	})
	select {
	case <-app.Started():
	case err := <-done:
		once.Do(cancel) // Run has returned: nothing left for stop to wait for
		t.Fatalf("backend stopped at start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("backend did not start in 30 s")
	}
	return stop
}

// startEdge runs a real edge agent with cfg on a simulated keypad with
// kpOpts until ctx ends or the test does.
func startEdge(t *testing.T, ctx context.Context, cfg edge.Config, kpOpts keypad.Options) (*keypad.Keypad, *edge.Agent) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	hostEnd, padEnd := net.Pipe()
	kp := keypad.New(padEnd, kpOpts)
	agent, err := edge.New(cfg, hostEnd)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() { _ = kp.Run(ctx) })
	wg.Go(func() { _ = agent.Run(ctx) })
	return kp, agent
}

// waitWritten waits until everything the broker acknowledged is in InfluxDB.
func waitWritten(t *testing.T, app *backend.App) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for app.WriterStats().Backlog.PendingRecords > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("writer backlog still %d after 60 s", app.WriterStats().Backlog.PendingRecords)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countBySite runs q, grouped by site, and returns each site's count.
func countBySite(t *testing.T, db *influxlocal.Server, q string) map[string]int64 {
	t.Helper()
	return countByTag(t, db, "site", q)
}

// countByDevice runs q, grouped by device, and returns each device's count.
func countByDevice(t *testing.T, db *influxlocal.Server, q string) map[string]int64 {
	t.Helper()
	return countByTag(t, db, "device", q)
}

func countByTag(t *testing.T, db *influxlocal.Server, tag, q string) map[string]int64 {
	t.Helper()
	series, err := db.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	out := map[string]int64{}
	for _, s := range series {
		n, err := s.Int(0, s.Columns[1])
		if err != nil {
			t.Fatalf("%s: %s %s: %v", q, tag, s.Tags[tag], err)
		}
		out[s.Tags[tag]] = n
	}
	return out
}

// checkVotesBySite compares InfluxDB's valid votes by site and score, and
// its invalid presses by site, with what the fleet pressed.
func checkVotesBySite(t *testing.T, db *influxlocal.Server, sites map[string]fleet.Counts) {
	t.Helper()
	for score := 1; score <= 5; score++ {
		got := countBySite(t, db, fmt.Sprintf(`SELECT count(score) FROM vote WHERE valid='true' AND score=%d GROUP BY site`, score))
		for site, want := range sites {
			if got[site] != int64(want.Scores[score-1]) {
				t.Errorf("site %s score %d: %d in InfluxDB, fleet pressed %d", site, score, got[site], want.Scores[score-1])
			}
		}
	}
	invalid := countBySite(t, db, `SELECT count(score) FROM vote WHERE valid='false' GROUP BY site`)
	for site, want := range sites {
		if invalid[site] != int64(want.Invalid) {
			t.Errorf("site %s: %d invalid votes in InfluxDB, fleet pressed %d", site, invalid[site], want.Invalid)
		}
	}
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() && os.Getenv("SEMKO_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func httpGet(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func httpBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// apiDo calls the API with testToken and fails the test unless it answers
// wantCode; the JSON answer is decoded into out when out is not nil.
func apiDo(t *testing.T, method, url, body string, wantCode int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&raw)
	if resp.StatusCode != wantCode {
		t.Fatalf("%s %s = %d %s, want %d", method, url, resp.StatusCode, raw, wantCode)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, raw, err)
		}
	}
}
