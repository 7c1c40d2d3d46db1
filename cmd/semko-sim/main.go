// Command semko-sim runs a simulated fleet, keypads and real edge agents,
// against a Semko broker; with -fleet-file it writes the fleet's registry
// file for the backend instead and exits. The same -seed and sizes give the
// same fleet, so a file written once matches every later run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/semko/semko/broker"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/cli"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("semko-sim", flag.ContinueOnError)
	var spec fleet.Spec
	fs.Int64Var(&spec.Seed, "seed", 1, "seed: the same seed and sizes give the same fleet")
	fs.IntVar(&spec.Orgs, "orgs", 3, "organisations")
	fs.IntVar(&spec.SitesPerOrg, "sites", 2, "sites per organisation")
	fs.IntVar(&spec.CountersPerSite, "counters", 3, "counters (keypads) per site")
	fs.IntVar(&spec.OperatorsPerSite, "operators", 0, "operators per site (0: one per counter)")
	fs.IntVar(&spec.Services, "services", 6, "service types")
	fs.StringVar(&spec.FW, "fw", "1.4.2", "keypad firmware version")
	fleetFile := fs.String("fleet-file", "", "write the fleet's registry file here and exit")

	opts := fleet.Options{}
	fs.StringVar(&opts.Broker, "broker", "tcp://127.0.0.1:1883", "MQTT broker URL")
	fs.StringVar(&opts.DataDir, "data", "var/sim", "directory for the edge agents' data, one folder a device")
	fs.DurationVar(&opts.ServiceInterval, "service-interval", 30*time.Second, "mean time between services per counter")
	fs.DurationVar(&opts.Window, "window", 20*time.Second, "vote window of each activation")
	fs.Float64Var(&opts.Participation, "participation", 0.7, "share of activations that get a vote")
	fs.Float64Var(&opts.StrayPresses, "stray", 0.02, "share of activations followed by a press outside any window")
	fs.IntVar(&opts.MaxActivations, "max-activations", 0, "activations per counter, then drain and stop (0: until interrupted)")
	fs.DurationVar(&opts.DrainTimeout, "drain-timeout", 30*time.Second, "at the end, wait this long for the edge outboxes to empty")
	clocks := edgeClocks{}
	fs.Var(clocks, "edge-clock", "give one unit's edge a wrong clock: DEVICE=OFFSET (6m fast, -72h slow) or DEVICE=OFFSET,AFTER,TO (stepped to TO off after AFTER); repeatable")
	statusEvery := fs.Duration("status-every", 10*time.Second, "log a status line this often (0: never)")
	logger := cli.LogFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := logger()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}

	m := fleet.Generate(spec)
	if *fleetFile != "" {
		if err := m.WriteFleetFile(*fleetFile, broker.HashSecret); err != nil {
			log.Error("write fleet file", "err", err)
			return 1
		}
		log.Info("fleet file written", "path", *fleetFile, "devices", len(m.Devices), "seed", spec.Seed)
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts.Logger = log
	if len(clocks) > 0 {
		opts.EdgeClocks = clocks.of
	}
	tally := fleet.NewTally(m)
	statusCtx, stopStatus := context.WithCancel(ctx)
	statusDone := make(chan struct{})
	go func() {
		defer close(statusDone)
		if *statusEvery > 0 {
			reportStatus(statusCtx, log, tally, *statusEvery)
		}
	}()
	err = fleet.RunWithTally(ctx, m, opts, tally)
	stopStatus()
	<-statusDone
	total := tally.Total()
	log.Info("fleet done", "activations", total.Activations, "votes", total.Votes,
		"invalid", total.Invalid, "unsure", total.Unsure, "satisfied", fmt.Sprintf("%.2f", total.Satisfied()))
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("fleet", "err", err)
		return 1
	}
	return 0
}

// reportStatus logs the fleet's state until ctx is done.
func reportStatus(ctx context.Context, log *slog.Logger, t *fleet.Tally, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s := t.Snapshot()
			log.Info("fleet status", "connected", fmt.Sprintf("%d/%d", s.Connected, s.Units),
				"activations", s.Total.Activations, "votes", s.Total.Votes,
				"activations_1m", s.ActivationsLastMinute, "votes_1m", s.VotesLastMinute,
				"satisfied", fmt.Sprintf("%.2f", s.Satisfied))
		}
	}
}
