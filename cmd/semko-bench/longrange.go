package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/semko/semko/bench"
	"github.com/semko/semko/bench/longrange"
)

// runLongRange is "semko-bench longrange": the long-range query benchmark
// (bench/longrange), printed as a Markdown table for docs/performance.md.
func runLongRange(args []string) int {
	fs := flag.NewFlagSet("semko-bench longrange", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "a small fleet and 35 days (for CI)")
	keypads := fs.Int("keypads", 0, "keypads of the 1x organisation (default 50, quick 10)")
	days := fs.Int("days", 0, "days of history (default 365, quick 35)")
	fleets := fs.Int("fleets", 0, "fleet sizes measured: 1 (1x) or 2 (1x and 4x, the default)")
	rawTimeout := fs.Duration("raw-timeout", 0, "stop a raw query or raw report after this long and show it as cut (0: no limit)")
	dashboard := fs.String("dashboard", "grafana/dashboards/satisfaction.json", "dashboard whose range panels are timed")
	dir := fs.String("dir", "", "working directory (default: a temporary one, removed at the end)")
	reuse := fs.Bool("reuse", false, "time the queries again on the data an earlier run left in -dir (no loading, no backfill)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := longrange.Full
	if *quick {
		cfg = longrange.Quick
	}
	if *keypads > 0 {
		cfg.Keypads = *keypads
	}
	if *days > 0 {
		cfg.Days = *days
	}
	if *fleets > 0 {
		cfg.Fleets = *fleets
	}
	cfg.RawTimeout = *rawTimeout
	cfg.Dashboard, cfg.Progress = *dashboard, os.Stderr
	cfg.Dir, cfg.Reuse = *dir, *reuse
	if cfg.Reuse && cfg.Dir == "" {
		fmt.Fprintln(os.Stderr, "longrange: -reuse needs -dir")
		return 2
	}
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "semko-longrange-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(d)
		cfg.Dir = d
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := longrange.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "longrange:", err)
		return 1
	}
	longrange.Print(os.Stdout, cfg, bench.Machine(), res)
	return 0
}
