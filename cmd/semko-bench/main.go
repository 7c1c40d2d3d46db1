// Command semko-bench runs the fleet benchmark (see package bench) and
// prints its table. With "gen <options.json>" it is instead the load
// generator child the benchmark starts for its big fleets.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/semko/semko/bench"
	"github.com/semko/semko/firmware-sim/loadgen"
	"github.com/semko/semko/internal/cli"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) > 0 && args[0] == "gen" {
		return runGenerator(args[1:])
	}
	if len(args) > 0 && args[0] == "longrange" {
		return runLongRange(args[1:]) // longrange.go
	}
	fs := flag.NewFlagSet("semko-bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "small fleets, a few seconds a target (for CI)")
	dir := fs.String("dir", "", "working directory (default: a fresh temporary one, removed at the end)")
	only := fs.String("targets", "", "comma-separated target numbers to run, e.g. 1,3 (default: all)")
	scale := fs.Int("n", 0, "units for the connection and storm targets (default 19500, quick 500)")
	ingestUnits := fs.Int("ingest-units", 0, "units for the ingest target (default 4000, quick 200)")
	ingestFor := fs.Duration("ingest-for", 0, "how long the ingest target presses (default 60s, quick 5s)")
	stormJitter := fs.Duration("storm-jitter", 0, "storm: first reconnect wait, full jitter (default 5s, quick 1s)")
	stormCap := fs.Duration("storm-backoff-cap", 0, "storm: cap of the doubling reconnect wait (default 10s, quick 2s)")
	pending := fs.Int("pending-writes", 64, "broker MaxPendingWrites per client for the connection targets")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the backend process here")
	memProfile := fs.String("memprofile", "", "write a heap profile here when the connection target measures")
	logger := cli.LogFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := logger()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if n, err := raiseOpenFiles(); err != nil {
		log.Warn("raise open-files limit", "err", err)
	} else {
		log.Debug("open-files limit", "soft", n)
	}

	workDir := *dir
	if workDir == "" {
		if workDir, err = os.MkdirTemp("", "semko-bench-"); err != nil {
			log.Error("work dir", "err", err)
			return 1
		}
		defer os.RemoveAll(workDir)
	}
	self, err := os.Executable()
	if err != nil {
		log.Error("find own executable for the generator", "err", err)
		return 1
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Error("cpu profile", "err", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Error("cpu profile", "err", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	var targets []string
	if *only != "" {
		targets = strings.Split(*only, ",")
	}
	results, err := bench.Run(ctx, bench.Config{
		Quick: *quick, Dir: filepath.Clean(workDir), GeneratorArgv: []string{self, "gen"},
		Targets: targets, Scale: *scale, PendingWrites: int32(*pending), HeapProfile: *memProfile,
		IngestUnits: *ingestUnits, IngestFor: *ingestFor,
		StormJitter: *stormJitter, StormBackoffCap: *stormCap,
		Logger: log, Progress: os.Stderr,
	})
	if err != nil {
		log.Error("bench", "err", err)
		if results == nil {
			return 1
		}
	}
	fmt.Println()
	if err := bench.PrintTable(os.Stdout, bench.Machine(), *quick, results); err != nil {
		return 1
	}
	if err != nil {
		return 1
	}
	return 0
}

// runGenerator is the child: it runs the fleet described by the options
// file and answers the parent's commands on stdin and stdout until told to
// quit or its stdin closes.
func runGenerator(args []string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("part", "generator")
	if len(args) != 1 {
		log.Error("usage: semko-bench gen <options.json>")
		return 2
	}
	if _, err := raiseOpenFiles(); err != nil {
		log.Warn("raise open-files limit", "err", err)
	}
	opts, err := loadgen.ReadOptions(args[0])
	if err != nil {
		log.Error("generator", "err", err)
		return 1
	}
	opts.Logger = log
	f, err := loadgen.New(opts)
	if err != nil {
		log.Error("generator", "err", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	err = loadgen.Serve(ctx, f, os.Stdin, os.Stdout)
	cancel()
	<-done
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("generator", "err", err)
		return 1
	}
	return 0
}
