package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/firmware-sim/loadgen"
	"github.com/semko/semko/internal/influxdb"
)

// makeFleet generates a fleet of at least n keypads (sites of 40 counters,
// ten operators and thirty services per site, as the national fleet), writes
// its fleet file and returns the first n devices.
func makeFleet(dir string, n int) (string, []loadgen.Device, error) {
	const perSite = 40
	sites := (n + perSite - 1) / perSite
	orgs := (sites + 24) / 25
	m := fleet.Generate(fleet.Spec{Seed: 7, Orgs: orgs, SitesPerOrg: min(sites, 25), CountersPerSite: perSite,
		OperatorsPerSite: 10, Services: 30})
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", nil, fmt.Errorf("fleet dir: %w", err)
	}
	path := filepath.Join(dir, "fleet.yaml")
	if err := m.WriteFleetFile(path, broker.HashSecret); err != nil {
		return "", nil, fmt.Errorf("fleet file: %w", err)
	}
	if len(m.Devices) < n {
		return "", nil, fmt.Errorf("fleet has %d devices, want %d", len(m.Devices), n)
	}
	devs := make([]loadgen.Device, n)
	for i := range devs {
		devs[i] = loadgen.Device{ID: m.Devices[i].ID, Secret: m.Devices[i].Secret}
	}
	return path, devs, nil
}

// stack is one running backend.App writing to its own database.
type stack struct {
	app    *backend.App
	cfg    backend.Config
	cancel context.CancelFunc
	done   chan error
}

// tuning is what a target changes in the backend's defaults.
type tuning func(*backend.Config)

// newDatabase creates a database of its own for one target, so counts are
// never mixed.
func (e *env) newDatabase(ctx context.Context, name string) error {
	_, err := e.influx.Query(ctx, "DROP DATABASE "+name+"; CREATE DATABASE "+name)
	return err
}

// startStack starts the backend with its data in dir, on mqttAddr
// ("127.0.0.1:0" for a free port), writing to database db.
func (e *env) startStack(ctx context.Context, dir, fleetFile, db, mqttAddr string, tune ...tuning) (*stack, error) {
	cfg := backend.DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "backend")
	cfg.FleetFile = fleetFile
	cfg.MQTT.Addr = mqttAddr
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.Token = "bench"
	cfg.Influx.URL = e.influx.URL()
	cfg.Influx.Bucket = db
	for _, t := range tune {
		t(&cfg)
	}
	app, err := backend.New(cfg, e.log.With("part", "backend"))
	if err != nil {
		return nil, fmt.Errorf("backend: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &stack{app: app, cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- app.Run(runCtx) }()
	select {
	case <-app.Started():
		return s, nil
	case err := <-s.done:
		cancel()
		return nil, fmt.Errorf("backend start: %w", err)
	case <-ctx.Done():
		cancel()
		<-s.done
		return nil, ctx.Err()
	}
}

// stop shuts the backend down and waits for it, at most a minute: a
// benchmark that cannot stop its backend reports it rather than hang.
func (s *stack) stop() error {
	s.cancel()
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	select {
	case err := <-s.done:
		return err
	case <-t.C:
		return errors.New("backend did not stop within a minute")
	}
}

// metricsClient bounds every /metrics scrape.
var metricsClient = &http.Client{Timeout: 10 * time.Second}

// brokerMetric reads one semko_broker_* value from the backend's /metrics:
// App exposes the broker's counters there and nowhere else.
func (s *stack) brokerMetric(ctx context.Context, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.app.HTTPAddr()+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	total, found := 0.0, false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "semko_broker_"+name) {
			continue
		}
		rest := strings.TrimPrefix(line, "semko_broker_"+name)
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics %s: %w", name, err)
		}
		total, found = total+v, true
	}
	if !found {
		return 0, fmt.Errorf("metrics: no semko_broker_%s", name)
	}
	return total, sc.Err()
}

// countVotes is the number of vote points in db.
func (e *env) countVotes(ctx context.Context, db string) (int64, error) {
	series, err := influxdb.Query(ctx, e.influx.URL(), db, `SELECT count(score) FROM vote`)
	if err != nil {
		return 0, err
	}
	if len(series) == 0 {
		return 0, nil
	}
	return series[0].Int(0, "count")
}

// waitVotes polls until db holds want votes, and fails if it ever holds
// more (a duplicate) or the deadline passes. It returns when they landed.
func (e *env) waitVotes(ctx context.Context, db string, want int64, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	var got int64
	for {
		n, err := e.countVotes(ctx, db)
		if err == nil {
			got = n
			switch {
			case n == want:
				return time.Now(), nil
			case n > want:
				return time.Time{}, fmt.Errorf("InfluxDB holds %d votes, %d were pressed: duplicates", n, want)
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("after %s InfluxDB holds %d of %d votes (lost or still queued)", limit, got, want)
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return time.Time{}, ctx.Err()
		}
	}
}

// waitFor polls cond every interval until it holds or limit passes.
func waitFor(ctx context.Context, limit, interval time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("%s: not within %s", what, limit), last)
		}
		if !sleepCtx(ctx, interval) {
			return ctx.Err()
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// localFleet runs a loadgen.Fleet in this process until stop is called.
type localFleet struct {
	*loadgen.Fleet
	cancel context.CancelFunc
	done   chan struct{}
}

func startLocal(ctx context.Context, opts loadgen.Options) (*localFleet, error) {
	f, err := loadgen.New(opts)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	lf := &localFleet{Fleet: f, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(lf.done)
		_ = f.Run(runCtx)
	}()
	return lf, nil
}

func (l *localFleet) stop() {
	l.cancel()
	<-l.done
}

// waitConnected waits until every unit of f is connected.
func waitConnected(ctx context.Context, f *localFleet, limit time.Duration) error {
	return waitFor(ctx, limit, 50*time.Millisecond, "units connected", func() (bool, error) {
		s := f.Stats()
		return s.Connected == s.Units, fmt.Errorf("%d of %d connected", s.Connected, s.Units)
	})
}

// startTarget gives a throughput target its own fleet file, database and
// backend, and an in-process generator of units with the given in-flight
// window, all connected within limit. stop undoes it, generator first.
func (e *env) startTarget(ctx context.Context, name string, units, window int, limit time.Duration) (*stack, *localFleet, func(), error) {
	dir := filepath.Join(e.cfg.Dir, name)
	fleetFile, devs, err := makeFleet(dir, units)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := e.newDatabase(ctx, name); err != nil {
		return nil, nil, nil, err
	}
	st, err := e.startStack(ctx, dir, fleetFile, name, "127.0.0.1:0")
	if err != nil {
		return nil, nil, nil, err
	}
	f, err := startLocal(ctx, loadgen.Options{Broker: "tcp://" + st.app.MQTTAddr(), Devices: devs,
		Window: window, MaxRate: unitRate, Jitter: time.Second, UnitsPerAddr: 40, Logger: e.log})
	if err != nil {
		st.stop()
		return nil, nil, nil, err
	}
	stop := func() {
		f.stop()
		st.stop()
	}
	if err := waitConnected(ctx, f, limit); err != nil {
		stop()
		return nil, nil, nil, err
	}
	return st, f, stop, nil
}
