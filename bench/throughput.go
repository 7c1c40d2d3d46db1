package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/semko/semko/internal/influxdb"
)

// unitRate keeps each simulated unit under the broker's default per-device
// limit (50/s, burst 200): a publish over it gets no PUBACK and would
// stall the unit until its ack timeout.
const unitRate = 45

// runIngest (target 1) keeps every unit's outbox topped up for the
// duration, then waits until InfluxDB holds exactly the votes pressed. The
// figure is votes landed per second, from the first press to the last
// vote queryable.
func runIngest(ctx context.Context, e *env) (Result, error) {
	res := Result{Goal: ">= 27000 votes/s for 60 s, none lost or doubled"}
	// Many units, each well under its rate cap, as a real fleet: the
	// broker takes one message at a time per connection, so concurrency
	// comes from the number of connections.
	units, dur := 4000, 60*time.Second
	if e.cfg.Quick {
		units, dur = 200, 5*time.Second
	}
	if e.cfg.IngestUnits > 0 {
		units = e.cfg.IngestUnits
	}
	if e.cfg.IngestFor > 0 {
		dur = e.cfg.IngestFor
	}
	// The broker reads one message at a time per connection, so a deeper
	// window only queues votes in TCP buffers (and PUBACKs then time out).
	const window = 4
	st, f, stop, err := e.startTarget(ctx, "t1", units, window, 2*time.Minute)
	if err != nil {
		return res, err
	}
	defer stop()
	e.step("  %d units connected; pressing for %s", units, dur)

	start := time.Now()
	pressed, ackRate, err := e.press(ctx, f, window, dur)
	if err != nil {
		return res, err
	}
	landed, err := e.waitVotes(ctx, "t1", int64(pressed), 5*time.Minute)
	if err != nil {
		return res, err
	}
	rate := float64(pressed) / landed.Sub(start).Seconds()
	dropped, _ := st.brokerMetric(ctx, "dropped_total")
	limited, _ := st.brokerMetric(ctx, "rate_limited_total")
	res.Figure = fmt.Sprintf("%.0f votes/s", rate)
	res.Met = rate >= 27000 && dur >= time.Minute
	res.Note = fmt.Sprintf("%d units (light generator, QoS 1, window %d, %d/s cap each), %d votes in %.1f s, all in InfluxDB once; broker acknowledged %.0f/s while pressing; %d reconnects; broker drops %.0f, rate-limited %.0f",
		units, window, unitRate, pressed, landed.Sub(start).Seconds(), ackRate, f.Stats().Reconnects, dropped, limited)
	if dur < time.Minute {
		res.Note += "; shorter than 60 s: not a verdict"
	}
	return res, nil
}

// runLatency (target 2) presses 1000 votes/s spread over the units and
// samples one unit's votes: each sample's latency is from its press (the
// vote's timestamp) to the first InfluxQL query that returns it.
func runLatency(ctx context.Context, e *env) (Result, error) {
	res := Result{Goal: "p99 < 1 s at 1000 votes/s"}
	units, dur := 100, 30*time.Second
	if e.cfg.Quick {
		units, dur = 100, 5*time.Second
	}
	st, f, stop, err := e.startTarget(ctx, "t2", units, 8, time.Minute)
	if err != nil {
		return res, err
	}
	defer stop()

	type sample struct {
		seq     uint64
		pressed time.Time
	}
	samples := make(chan sample, 4096)
	var latencies []time.Duration
	pollErr := make(chan error, 1)
	probe := f.DeviceID(0)
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	go func() {
		// Owned by this target: ends with pollCtx, reports on pollErr.
		var waiting []sample
		q := fmt.Sprintf(`SELECT last(seq) FROM vote WHERE device='%s'`, probe)
		for {
			select {
			case <-pollCtx.Done():
				pollErr <- nil
				return
			case s := <-samples:
				waiting = append(waiting, s)
				continue
			default:
			}
			if len(waiting) == 0 {
				if !sleepCtx(pollCtx, 5*time.Millisecond) {
					continue
				}
				continue
			}
			series, err := influxdb.Query(pollCtx, e.influx.URL(), "t2", q)
			seen := time.Now()
			if err != nil {
				if pollCtx.Err() != nil {
					continue
				}
				pollErr <- err
				return
			}
			if len(series) == 1 {
				last, _ := series[0].Int(0, "last")
				for len(waiting) > 0 && waiting[0].seq <= uint64(last) {
					latencies = append(latencies, seen.Sub(waiting[0].pressed))
					waiting = waiting[1:]
				}
			}
			sleepCtx(pollCtx, 5*time.Millisecond)
		}
	}()

	const rate = 1000
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	next, sent, lastProbe := 0, 0, uint64(0)
	for time.Since(start) < dur {
		want := int(time.Since(start).Seconds()*rate) - sent
		for range want {
			if err := f.Enqueue(next, 1); err != nil {
				tick.Stop()
				return res, err
			}
			next = (next + 1) % units
			sent++
		}
		if seq, ts := f.LastPressed(0); seq != lastProbe {
			lastProbe = seq
			samples <- sample{seq, ts}
		}
		select {
		case <-ctx.Done():
			tick.Stop()
			return res, ctx.Err()
		case <-tick.C:
		}
	}
	tick.Stop()
	if _, err := e.waitVotes(ctx, "t2", int64(sent), 2*time.Minute); err != nil {
		return res, err
	}
	// Let the poller see the last samples, then stop it.
	sleepCtx(ctx, 500*time.Millisecond)
	stopPoll()
	if err := <-pollErr; err != nil {
		return res, fmt.Errorf("latency poll: %w", err)
	}
	if len(latencies) == 0 {
		return res, fmt.Errorf("no latency samples")
	}
	slices.Sort(latencies)
	p := func(q float64) time.Duration { return latencies[min(len(latencies)-1, int(q*float64(len(latencies))))] }
	p50, p99 := p(0.50), p(0.99)
	res.Figure = fmt.Sprintf("p50 %d ms, p99 %d ms", p50.Milliseconds(), p99.Milliseconds())
	res.Met = p99 < time.Second
	res.Note = fmt.Sprintf("%d samples over %s, %d votes, all landed once; writer flush interval %s bounds p50; poll every ~5 ms",
		len(latencies), dur, sent, st.cfg.Influx.FlushInterval)
	return res, nil
}

// runDrain (target 5) stops InfluxDB, presses ten minutes' worth of votes
// at the steady rate (compressed: as fast as the units may send), starts
// InfluxDB again while votes keep arriving at the steady rate, and compares
// the rate at which the spool drains with the arrival rate.
func runDrain(ctx context.Context, e *env) (Result, error) {
	res := Result{Goal: "drain >= 10x arrival rate after a 10 min outage"}
	units, rate := 200, 100
	if e.cfg.Quick {
		units, rate = 100, 10
	}
	backlog := rate * 600
	st, f, stop, err := e.startTarget(ctx, "t5", units, 16, time.Minute)
	if err != nil {
		return res, err
	}
	defer stop()

	e.step("  InfluxDB down; pressing %d votes (10 min at %d/s, compressed)", backlog, rate)
	if err := e.influx.Stop(); err != nil {
		return res, fmt.Errorf("stop influxdb: %w", err)
	}
	restarted := false
	defer func() {
		if !restarted {
			_ = e.influx.Restart(context.WithoutCancel(ctx))
		}
	}()
	for i := range backlog {
		if err := f.Enqueue(i%units, 1); err != nil {
			return res, err
		}
	}
	if err := waitFor(ctx, 5*time.Minute, 100*time.Millisecond, "backlog acknowledged", func() (bool, error) {
		return f.Stats().Pending == 0, nil
	}); err != nil {
		return res, err
	}
	spooled := st.app.WriterStats().Backlog.PendingRecords
	e.step("  %d records in the spool; InfluxDB back, arrivals at %d/s", spooled, rate)

	// Arrivals at the steady rate, owned here, stopped before returning.
	arrCtx, stopArrivals := context.WithCancel(ctx)
	arrived := make(chan int, 1)
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		begin, n := time.Now(), 0
		for {
			select {
			case <-arrCtx.Done():
				arrived <- n
				return
			case <-t.C:
			}
			for ; n < int(time.Since(begin).Seconds()*float64(rate)); n++ {
				_ = f.Enqueue(n%units, 1)
			}
		}
	}()
	restartAt := time.Now()
	if err := e.influx.Restart(ctx); err != nil {
		stopArrivals()
		<-arrived
		return res, fmt.Errorf("restart influxdb: %w", err)
	}
	restarted = true
	up := time.Now()
	written0 := st.app.WriterStats().PointsWritten
	var resumed time.Time
	err = waitFor(ctx, 10*time.Minute, 20*time.Millisecond, "spool drained", func() (bool, error) {
		ws := st.app.WriterStats()
		if resumed.IsZero() && ws.PointsWritten > written0 {
			resumed = time.Now()
		}
		return !resumed.IsZero() && ws.Backlog.PendingRecords < int64(rate/10+1), nil
	})
	drained := time.Now()
	written := st.app.WriterStats().PointsWritten - written0
	stopArrivals()
	n := <-arrived
	if err != nil {
		return res, err
	}
	total := int64(backlog + n)
	if _, err := e.waitVotes(ctx, "t5", total, 2*time.Minute); err != nil {
		return res, err
	}
	drainRate := float64(written) / drained.Sub(resumed).Seconds()
	overall := float64(written) / drained.Sub(up).Seconds()
	ratio := drainRate / float64(rate)
	res.Figure = fmt.Sprintf("%.0f points/s = %.0fx arrivals", drainRate, ratio)
	res.Met = ratio >= 10
	res.Note = fmt.Sprintf("%d spooled, arrivals %d/s; InfluxDB start %.1f s, writer resumed %.1f s after it (retry backoff), drained in %.1f s (%.0f/s counting the wait); all %d votes once",
		spooled, rate, up.Sub(restartAt).Seconds(), resumed.Sub(up).Seconds(), drained.Sub(resumed).Seconds(), overall, total)
	return res, nil
}

// press keeps every unit's window full for dur (topped up every 20 ms) and
// returns the votes pressed and the rate the broker acknowledged them at
// while pressing.
func (e *env) press(ctx context.Context, f *localFleet, window int, dur time.Duration) (pressed uint64, ackRate float64, err error) {
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Since(start) < dur {
		f.TopUp(2 * window)
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-tick.C:
		}
	}
	took := time.Since(start)
	ps := f.Stats()
	e.step("  pressed %d votes in %s; waiting for them in InfluxDB", ps.Enqueued, took.Round(time.Millisecond))
	return ps.Enqueued, float64(ps.Acked) / took.Seconds(), nil
}
