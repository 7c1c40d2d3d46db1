// Package bench is the fleet benchmark behind `make bench`: it runs
// issue 7's targets against the real backend (an in-process backend.App
// with the embedded broker, a real InfluxDB 1.8 from internal/influxlocal)
// driven by simulated keypads from firmware-sim/loadgen, and prints one
// table: target, figure, goal, met or not, and the machine.
//
// Every target counts what landed in InfluxDB, so a figure is never a
// throughput bought by losing votes.
package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/semko/semko/internal/influxlocal"
)

// Config configures Run.
type Config struct {
	// Quick runs every target small and for a few seconds, for CI.
	Quick bool
	// Dir is the working directory for data; Run creates it.
	Dir string
	// GeneratorArgv starts a load generator in its own process; Run
	// appends the path of its options file (see loadgen.StartRemote).
	// Required for the connection and reconnect targets.
	GeneratorArgv []string
	// Targets selects targets by number ("1".."7"); empty runs all.
	Targets []string
	// Scale overrides the connection and storm fleet size (0: 19,500 in
	// full mode, 500 in quick mode).
	Scale int
	// IngestUnits and IngestFor override the ingest target's fleet size and
	// duration (0: 4000 units for 60 s; quick 200 for 5 s).
	IngestUnits int
	IngestFor   time.Duration
	// StormJitter and StormBackoffCap override the storm's reconnect policy
	// (0: 5 s doubling to 10 s; quick 1 s to 2 s).
	StormJitter, StormBackoffCap time.Duration
	// PendingWrites is the broker's per-client write queue used for the
	// connection target (broker.Options.MaxPendingWrites; 0: 64).
	PendingWrites int32
	// HeapProfile, if set, receives a heap profile taken when the
	// connection target measures, with the whole fleet connected.
	HeapProfile string
	Logger      *slog.Logger
	// Progress receives one line per step (default: discarded).
	Progress io.Writer
}

// Result is one row of the table.
type Result struct {
	Target string
	Figure string
	Goal   string
	Met    bool
	Note   string // how it was measured, what bounds it
}

// target is one benchmark.
type target struct {
	id, name string
	run      func(ctx context.Context, e *env) (Result, error)
}

var targets = []target{
	{"1", "ingest, exactly once", runIngest},
	{"2", "latency press->queryable", runLatency},
	{"3", "connections", runConnections},
	{"4", "reconnect storm", runStorm},
	{"5", "backlog drain", runDrain},
	{"6", "cardinality", runCardinality},
	{"7", "cluster: 3 nodes, 2 replicas", runCluster},
}

// env is what the targets share.
type env struct {
	cfg    Config
	log    *slog.Logger
	influx *influxlocal.Server
	step   func(format string, args ...any)
}

// Run starts InfluxDB and runs the selected targets in order. A target
// that fails to run yields a row saying so; Run goes on with the next.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.PendingWrites == 0 {
		cfg.PendingWrites = 64
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("bench dir: %w", err)
	}
	e := &env{cfg: cfg, log: cfg.Logger}
	e.step = func(format string, args ...any) {
		fmt.Fprintf(cfg.Progress, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
	e.step("starting InfluxDB 1.8.10")
	srv, err := influxlocal.Start(ctx, influxlocal.Options{
		Dir: filepath.Join(cfg.Dir, "influxdb"), Logger: cfg.Logger.With("part", "influxlocal"),
	})
	if err != nil {
		return nil, fmt.Errorf("influxdb: %w", err)
	}
	defer srv.Stop()
	e.influx = srv

	var results []Result
	for _, t := range targets {
		if !selected(cfg.Targets, t.id) {
			continue
		}
		e.step("target %s: %s", t.id, t.name)
		r, err := t.run(ctx, e)
		r.Target = t.id + " " + t.name
		if err != nil {
			if ctx.Err() != nil {
				return results, ctx.Err()
			}
			r.Figure, r.Met = "failed", false
			r.Note = err.Error()
		}
		e.step("target %s: %s (goal %s) %s", t.id, r.Figure, r.Goal, r.Note)
		results = append(results, r)
	}
	return results, nil
}

func selected(list []string, id string) bool {
	if len(list) == 0 {
		return true
	}
	for _, s := range list {
		if s == id {
			return true
		}
	}
	return false
}

// Machine describes the host: CPU model, cores, memory.
func Machine() string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	mem := "unknown memory"
	if kb, err := procStatusKB("/proc/meminfo", "MemTotal"); err == nil {
		mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	return fmt.Sprintf("%s, %d cores, %s, %s/%s, %s", cpu, runtime.NumCPU(), mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// PrintTable writes the results as one aligned table.
func PrintTable(w io.Writer, machine string, quick bool, results []Result) error {
	mode := "full"
	if quick {
		mode = "quick"
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(w, "machine: %s (load generator on the same machine)\nmode: %s; load average at the end: %s\n\n",
		machine, mode, strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tFIGURE\tGOAL\tMET\tNOTE")
	for _, r := range results {
		met := "no"
		if r.Met {
			met = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Target, r.Figure, r.Goal, met, r.Note)
	}
	return tw.Flush()
}

// procStatusKB reads a "Key: N kB" line from a /proc file.
func procStatusKB(path, key string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == key {
			var n int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d", &n); err != nil {
				return 0, fmt.Errorf("%s %s: %w", path, key, err)
			}
			return n, nil
		}
	}
	return 0, errors.Join(sc.Err(), fmt.Errorf("%s: no %s", path, key))
}
