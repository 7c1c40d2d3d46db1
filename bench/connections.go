package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/firmware-sim/loadgen"
)

// fleetSize is the connection and storm fleet.
func (e *env) fleetSize() int {
	switch {
	case e.cfg.Scale > 0:
		return e.cfg.Scale
	case e.cfg.Quick:
		return 500
	}
	return 19500
}

// startRemote runs the generator in its own process, so its clients cost
// neither the broker's memory figures nor its open files.
func (e *env) startRemote(dir string, opts loadgen.Options) (*loadgen.Remote, error) {
	if len(e.cfg.GeneratorArgv) == 0 {
		return nil, errors.New("no generator command (Config.GeneratorArgv)")
	}
	return loadgen.StartRemote(e.cfg.GeneratorArgv, filepath.Join(dir, "generator.json"), opts, os.Stderr)
}

// memory is the process's memory now, after a GC.
type memory struct {
	heapStack  uint64 // HeapInuse + StackInuse
	stack      uint64 // StackInuse
	rssKB      int64
	goroutines int
}

func measureMemory() memory {
	// Each GC shrinks a goroutine stack that uses under a quarter of its
	// size by half: a few let stacks that grew while a message was taken
	// settle to what an idle connection holds.
	for range 4 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, _ := procStatusKB("/proc/self/status", "VmRSS")
	return memory{heapStack: ms.HeapInuse + ms.StackInuse, stack: ms.StackInuse, rssKB: rss, goroutines: runtime.NumGoroutine()}
}

// runConnections (target 3) connects the fleet, lets every unit send
// heartbeats, and divides the backend process's memory growth by the units.
func runConnections(ctx context.Context, e *env) (Result, error) {
	res := Result{Goal: "<= 12 KiB per connection, drops counted"}
	n := e.fleetSize()
	hb, jitter := 30*time.Second, 10*time.Second
	if e.cfg.Quick {
		hb, jitter = 2*time.Second, time.Second
	}
	dir := filepath.Join(e.cfg.Dir, "t3")
	fleetFile, devs, err := makeFleet(dir, n)
	if err != nil {
		return res, err
	}
	if err := e.newDatabase(ctx, "t3"); err != nil {
		return res, err
	}
	st, err := e.startStack(ctx, dir, fleetFile, "t3", "127.0.0.1:0", func(c *backend.Config) {
		c.MQTT.MaxPendingWrites = e.cfg.PendingWrites
	})
	if err != nil {
		return res, err
	}
	defer st.stop()
	before := measureMemory()

	gen, err := e.startRemote(dir, loadgen.Options{Broker: "tcp://" + st.app.MQTTAddr(), Devices: devs,
		Window: 8, MaxRate: unitRate, Jitter: jitter, Heartbeat: hb, UnitsPerAddr: 40})
	if err != nil {
		return res, err
	}
	defer gen.Close()
	t0 := time.Now()
	if err := waitFor(ctx, 5*time.Minute, 250*time.Millisecond, "all connected", func() (bool, error) {
		c, err := st.brokerMetric(ctx, "clients_connected")
		return int(c) == n, errors.Join(err, fmt.Errorf("%.0f of %d connected", c, n))
	}); err != nil {
		return res, err
	}
	connectedIn := time.Since(t0)
	e.step("  %d connected in %s; waiting for a heartbeat from each", n, connectedIn.Round(time.Millisecond))
	if err := waitFor(ctx, 2*hb+time.Minute, 250*time.Millisecond, "a heartbeat from every unit", func() (bool, error) {
		s, err := gen.Stats()
		return s.Heartbeats >= uint64(n), errors.Join(err, fmt.Errorf("%d heartbeats", s.Heartbeats))
	}); err != nil {
		return res, err
	}
	after := measureMemory()
	if e.cfg.HeapProfile != "" {
		if err := writeHeapProfile(e.cfg.HeapProfile); err != nil {
			return res, err
		}
	}
	dropped, _ := st.brokerMetric(ctx, "dropped_total")
	limited, _ := st.brokerMetric(ctx, "conn_limited_total")
	perConn := float64(int64(after.heapStack)-int64(before.heapStack)) / float64(n) / 1024
	rssPer := float64(after.rssKB-before.rssKB) / float64(n)
	stackPer := float64(int64(after.stack)-int64(before.stack)) / float64(n) / 1024
	goPer := float64(after.goroutines-before.goroutines) / float64(n)
	res.Figure = fmt.Sprintf("%.1f KiB/conn (heap+stack; %.1f stack, %.1f goroutines), %.1f KiB/conn RSS", perConn, stackPer, goPer, rssPer)
	res.Met = perConn <= 12 && dropped == 0
	res.Note = fmt.Sprintf("%d units in a separate generator process, heartbeat every %s, connected in %.1f s; MaxPendingWrites %d; drops %.0f, refused by address limit %.0f",
		n, hb, connectedIn.Seconds(), e.cfg.PendingWrites, dropped, limited)
	return res, nil
}

// runStorm (target 4) connects the fleet, stops the backend (every unit
// dropped at once), presses votes into every unit's outbox while the
// broker is down, starts the backend again on the same data directory and
// address, and times until every unit is back and every vote landed.
func runStorm(ctx context.Context, e *env) (Result, error) {
	res := Result{Goal: "all online and all votes landed within 30 s, exactly once"}
	n, perUnit := e.fleetSize(), 5
	jitter, maxBackoff := 5*time.Second, 10*time.Second
	if e.cfg.Quick {
		jitter, maxBackoff = time.Second, 2*time.Second
	}
	if e.cfg.StormJitter > 0 {
		jitter = e.cfg.StormJitter
	}
	if e.cfg.StormBackoffCap > 0 {
		maxBackoff = e.cfg.StormBackoffCap
	}
	dir := filepath.Join(e.cfg.Dir, "t4")
	fleetFile, devs, err := makeFleet(dir, n)
	if err != nil {
		return res, err
	}
	if err := e.newDatabase(ctx, "t4"); err != nil {
		return res, err
	}
	tune := func(c *backend.Config) { c.MQTT.MaxPendingWrites = e.cfg.PendingWrites }
	st, err := e.startStack(ctx, dir, fleetFile, "t4", "127.0.0.1:0", tune)
	if err != nil {
		return res, err
	}
	addr := st.app.MQTTAddr()
	gen, err := e.startRemote(dir, loadgen.Options{Broker: "tcp://" + addr, Devices: devs,
		Window: 8, MaxRate: unitRate, Jitter: jitter, MaxBackoff: maxBackoff, UnitsPerAddr: 40})
	if err != nil {
		st.stop()
		return res, err
	}
	defer gen.Close()
	if err := waitFor(ctx, 5*time.Minute, 250*time.Millisecond, "all connected", func() (bool, error) {
		s, err := gen.Stats()
		return s.Connected == n, errors.Join(err, fmt.Errorf("%d of %d connected", s.Connected, n))
	}); err != nil {
		st.stop()
		return res, err
	}
	e.step("  %d connected; stopping the backend", n)
	if err := st.stop(); err != nil {
		return res, fmt.Errorf("backend stop: %w", err)
	}
	if err := gen.EnqueueAll(perUnit); err != nil {
		return res, err
	}
	want := int64(n * perUnit)

	// Peak memory during the storm, sampled by a goroutine owned here.
	var peak atomic.Uint64
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for sleepCtx(sampleCtx, 250*time.Millisecond) {
			runtime.ReadMemStats(&ms)
			if v := ms.HeapInuse + ms.StackInuse; v > peak.Load() {
				peak.Store(v)
			}
		}
	}()
	defer func() { stopSampling(); <-sampled }()

	e.step("  %d votes queued on the units; starting the backend again", want)
	t0 := time.Now()
	st, err = e.startStack(ctx, dir, fleetFile, "t4", addr, tune)
	if err != nil {
		return res, err
	}
	defer st.stop()
	appUp := time.Since(t0)
	var online time.Duration
	if err := waitFor(ctx, 5*time.Minute, 100*time.Millisecond, "all online", func() (bool, error) {
		c, err := st.brokerMetric(ctx, "clients_connected")
		return int(c) == n, errors.Join(err, fmt.Errorf("%.0f of %d online", c, n))
	}); err != nil {
		return res, err
	}
	online = time.Since(t0)
	landed, err := e.waitVotes(ctx, "t4", want, 5*time.Minute)
	if err != nil {
		return res, err
	}
	all := landed.Sub(t0)
	s, _ := gen.Stats()
	dropped, _ := st.brokerMetric(ctx, "dropped_total")
	// A PUBACK the broker withholds (intake failed or too slow, rate limit)
	// costs that unit the generator's AckTimeout before it reconnects.
	retries, _ := st.brokerMetric(ctx, "intake_retries_total")
	refused, _ := st.brokerMetric(ctx, "rate_limited_total")
	res.Figure = fmt.Sprintf("online %.1f s, landed %.1f s", online.Seconds(), all.Seconds())
	res.Met = all <= 30*time.Second
	res.Note = fmt.Sprintf("%d units (separate generator process), %d votes queued, all once; backend up in %.1f s; jitter %s, backoff cap %s; %d publishes for %d votes; peak heap+stack %d MiB (GC garbage included); drops %.0f; PUBACKs withheld: %.0f intake, %.0f rate; %d reconnects after an overdue PUBACK; %d publishes stalled by paho; %d failed connection attempts (last: %s); slowest connection %s",
		n, want, appUp.Seconds(), jitter, maxBackoff, s.Publishes, s.Enqueued, peak.Load()>>20, dropped, retries, refused, s.AckTimeouts, s.PublishStalls, s.ConnectFailures, s.LastConnectError, s.SlowestConnect.Round(time.Millisecond))
	return res, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	// The goroutines beside it: what each connection's stacks hold.
	g, err := os.Create(path + ".goroutines")
	if err != nil {
		return fmt.Errorf("goroutine profile: %w", err)
	}
	if err := pprof.Lookup("goroutine").WriteTo(g, 1); err != nil {
		g.Close()
		return fmt.Errorf("goroutine profile: %w", err)
	}
	return g.Close()
}
