package faults

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/broker"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/testwait"
)

const apiToken = "faults-token"

// backendProc is the semko daemon (backend with its embedded broker) run as
// a child process, so a test can SIGKILL it and start it again on the same
// data directory and ports.
type backendProc struct {
	t                  *testing.T
	dir                string
	mqttAddr, httpAddr string
	p                  *proc
	starts             int
	// broker, if set, is where edges connect instead of mqttAddr (the
	// cluster's nodes, comma-separated); env is more of the daemon's
	// environment.
	broker string
	env    []string
}

// backendOptions are the few settings a fault test changes.
type backendOptions struct {
	spoolMaxBytes int64  // 0: the default (1 GiB)
	influxYAML    string // more keys of the influx section, each line indented two spaces
}

// newBackend writes the fleet file and a config for model; it starts
// nothing.
func newBackend(t *testing.T, db *influxlocal.Server, model *fleet.Model, opts backendOptions) *backendProc {
	t.Helper()
	b := &backendProc{t: t, dir: t.TempDir(), mqttAddr: freeAddr(t), httpAddr: freeAddr(t)}
	if err := model.WriteFleetFile(filepath.Join(b.dir, "fleet.yaml"), broker.HashSecret); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`data_dir: %s
fleet_file: %s
mqtt:
  addr: %s
http:
  addr: %s
influx:
  url: %s
  bucket: %s
  flush_interval: 50ms
%s`, filepath.Join(b.dir, "data"), filepath.Join(b.dir, "fleet.yaml"), b.mqttAddr, b.httpAddr, db.URL(), db.Database(), opts.influxYAML)
	if opts.spoolMaxBytes > 0 {
		cfg += fmt.Sprintf("spool:\n  max_bytes: %d\n", opts.spoolMaxBytes)
	}
	if err := os.WriteFile(filepath.Join(b.dir, "semko.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && b.p != nil {
			t.Logf("tail of the backend's log %s:\n%s", b.p.logPath, b.p.tail(40))
		}
	})
	return b
}

// brokerURL is where edges connect.
func (b *backendProc) brokerURL() string {
	if b.broker != "" {
		return b.broker
	}
	return "tcp://" + b.mqttAddr
}

// start runs the daemon and returns once its HTTP API answers, which
// happens only after the broker listens.
func (b *backendProc) start() {
	b.t.Helper()
	b.starts++
	b.p = startProc(b.t, "semko", filepath.Join(b.dir, "semko.log"), append([]string{"SEMKO_API_TOKEN=" + apiToken}, b.env...),
		bin.semko, "serve", "-config", filepath.Join(b.dir, "semko.yaml"), "-log-level", "debug")
	testwait.Within(b.t, 30*time.Second, "backend did not answer /healthz", func() bool {
		if b.p.exited() {
			b.t.Fatalf("backend exited at start (%v):\n%s", b.p.err, b.p.tail(30))
		}
		code, _, err := b.get("/healthz")
		return err == nil && code == http.StatusOK
	})
}

// kill is the fault: SIGKILL, as a crash or power cut would.
func (b *backendProc) kill() { b.p.kill() }

// get fetches a path of the HTTP API.
func (b *backendProc) get(path string) (int, string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	req, err := http.NewRequest(http.MethodGet, "http://"+b.httpAddr+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// metrics scrapes /metrics and sums each series over its labels.
func (b *backendProc) metrics() map[string]float64 {
	b.t.Helper()
	code, body, err := b.get("/metrics")
	if err != nil || code != http.StatusOK {
		b.t.Fatalf("GET /metrics: %d %v", code, err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		out[name] += v
	}
	return out
}

// metric returns one series of /metrics, summed over its labels.
func (b *backendProc) metric(name string) float64 { return b.metrics()[name] }

// waitSpoolEmpty waits until everything the backend acknowledged is in
// InfluxDB and returns how long that took.
func (b *backendProc) waitSpoolEmpty(timeout time.Duration) time.Duration {
	b.t.Helper()
	return testwait.Within(b.t, timeout, "the backend's spool did not drain", func() bool {
		m := b.metrics()
		pending, ok := m["semko_spool_pending_records"]
		if !ok {
			b.t.Fatal("/metrics lacks semko_spool_pending_records")
		}
		return pending == 0
	})
}

// runFleet starts model's fleet voting through be in the background: each
// counter serves perCounter customers, one every interval; 80% of them vote
// and one press in ten falls outside a window. The channel gets the run's
// result once every edge outbox is empty (the backend has acknowledged
// everything) or drain ran out.
func runFleet(t *testing.T, be *backendProc, model *fleet.Model, interval time.Duration, perCounter int, drain time.Duration) (*fleet.Tally, <-chan error) {
	t.Helper()
	tally := fleet.NewTally(model)
	runErr := make(chan error, 1)
	opts := fleet.Options{
		Broker: be.brokerURL(), DataDir: t.TempDir(),
		ServiceInterval: interval, Window: 3 * time.Second,
		Participation: 0.8, StrayPresses: 0.1, MaxActivations: perCounter,
		DrainTimeout: drain,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	go func() { runErr <- fleet.RunWithTally(context.Background(), model, opts, tally) }()
	return tally, runErr
}
