// Command semko-dev is what `make run` starts: the whole system on one
// machine with embedded defaults. It starts a local InfluxDB 1.8.10, the
// backend with its embedded broker, and a simulated fleet, prints a status
// line every few seconds, and stops all of it on Ctrl-C.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/mailsink"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("semko-dev", flag.ContinueOnError)
	varDir := fs.String("var", "var", "where everything this run produces lives")
	seed := fs.Int64("seed", 1, "fleet seed: the same seed gives the same fleet")
	orgs := fs.Int("orgs", 3, "organisations in the simulated fleet")
	sites := fs.Int("sites", 2, "sites per organisation")
	counters := fs.Int("counters", 4, "counters (one keypad each) per site")
	interval := fs.Duration("service-interval", 15*time.Second, "mean time between services at one counter")
	every := fs.Duration("status-every", 5*time.Second, "how often to print the status line")
	influxAddr := fs.String("influx-addr", "127.0.0.1:8086", "local InfluxDB HTTP address")
	logLevel := fs.String("log-level", "info", "level of the log file: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// The terminal is for the status line: the full log goes to a file, and
	// only errors also reach the terminal.
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "-log-level:", err)
		return 2
	}
	if err := os.MkdirAll(*varDir, 0o750); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logPath := filepath.Join(*varDir, "semko-dev.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer logFile.Close()
	log := slog.New(slog.NewMultiHandler(
		slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: level}),
		slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}),
	))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dev(ctx, log, devOptions{
		varDir: *varDir, seed: *seed, orgs: *orgs, sites: *sites, counters: *counters,
		interval: *interval, every: *every, influxAddr: *influxAddr, logPath: logPath,
	}); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("semko-dev", "err", err)
		return 1
	}
	return 0
}

type devOptions struct {
	varDir                string
	seed                  int64
	orgs, sites, counters int
	interval, every       time.Duration
	influxAddr            string
	logPath               string
}

func dev(ctx context.Context, log *slog.Logger, o devOptions) error {
	if err := os.MkdirAll(o.varDir, 0o750); err != nil {
		return fmt.Errorf("var dir: %w", err)
	}

	// 1. InfluxDB 1.8.10, built once from the module proxy.
	if _, err := influxlocal.Ensure(ctx, log); err != nil {
		return err
	}
	db, err := influxlocal.Start(ctx, influxlocal.Options{
		Dir: filepath.Join(o.varDir, "influxdb"), HTTPAddr: o.influxAddr, Database: "semko",
		Logger: log.With("part", "influxd"),
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := db.Stop(); err != nil {
			log.Warn("stop influxd", "err", err)
		}
	}()

	// 2. The fleet file, from a seeded simulated fleet.
	model := fleet.Generate(fleet.Spec{Seed: o.seed, Orgs: o.orgs, SitesPerOrg: o.sites, CountersPerSite: o.counters})
	cfg := backend.DefaultConfig()
	cfg.DataDir = filepath.Join(o.varDir, "backend")
	cfg.FleetFile = filepath.Join(o.varDir, "fleet.yaml")
	cfg.Influx.URL = db.URL()
	if err := writeFleetFile(model, cfg.FleetFile); err != nil {
		return fmt.Errorf("write fleet file: %w", err)
	}
	cfg.HTTP.Token, err = apiToken(filepath.Join(o.varDir, "api-token"))
	if err != nil {
		return err
	}

	// A local mail sink: the backend's e-mail channel delivers there, and
	// every message becomes a file under var/mail.
	mailDir := filepath.Join(o.varDir, "mail")
	sink, err := mailsink.Start(mailsink.Options{Addr: "127.0.0.1:2525", Dir: mailDir, Logger: log.With("part", "mailsink")})
	if err != nil {
		return err
	}
	defer sink.Close()
	cfg.Notify.SMTP = backend.SMTPConfig{Host: "127.0.0.1", Port: 2525, TLS: "none", From: "Semko <semko@localhost>"}

	faults := withFaults(&cfg, model)                 // a few faulty keypads for the diagnostics
	cfg.Console.PublicURL = "http://" + cfg.HTTP.Addr // notices link to the console
	withSurvey(&cfg)                                  // NPS survey pages and simulated customers (survey.go)
	withIncidents(&cfg, model)                        // the incident desk, with an e-mail intake (incidents.go)

	// 3. The backend with its embedded broker.
	app, err := backend.New(cfg, log.With("part", "backend"))
	if err != nil {
		return err
	}
	accountsFile := filepath.Join(o.varDir, "console-accounts.txt")
	if _, err := consoleAccounts(ctx, app, model, accountsFile); err != nil {
		app.Close()
		return err
	}
	if err := subscribeWeekly(ctx, app, model); err != nil { // reports.go
		log.Warn("weekly report not subscribed", "err", err)
	}
	// The backend and the fleet get their own contexts: on Ctrl-C the fleet
	// stops first, so the edges hand over what they hold before the broker
	// goes away.
	backendCtx, stopBackend := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackend()
	backendDone := make(chan error, 1)
	go func() { backendDone <- app.Run(backendCtx) }()
	if err := waitHTTP(ctx, "http://"+cfg.HTTP.Addr+"/healthz"); err != nil {
		stopBackend()
		return fmt.Errorf("backend did not come up: %w", errors.Join(err, <-backendDone))
	}

	// 4. The simulated fleet: keypads and real edge agents.
	fleetCtx, stopFleet := context.WithCancel(ctx)
	defer stopFleet()
	fleetDone := make(chan error, 1)
	go func() {
		_, err := fleet.Run(fleetCtx, model, fleet.Options{
			Broker: "tcp://" + cfg.MQTT.Addr, DataDir: filepath.Join(o.varDir, "edges"),
			ServiceInterval: o.interval, Window: 20 * time.Second, Participation: 0.7, StrayPresses: 0.02,
			DrainTimeout: 5 * time.Second, Logger: log.With("part", "fleet"),
			NewKeypadOptions: faults, EdgeClocks: wrongEdgeClock(model),
		})
		fleetDone <- err
	}()

	defer runIncidents(fleetCtx, cfg, model, uint64(o.seed), log.With("part", "incident-sim"))() // a trickle of incidents and thanks

	fmt.Printf(`
Semko is running. Ctrl-C stops everything.
  InfluxDB   %s  (database semko; try: curl -G %s/query --data-urlencode "db=semko" --data-urlencode "q=SELECT count(score) FROM vote GROUP BY site")
  MQTT       tcp://%s  (devices authenticate with their secrets; the backend owns the broker)
  HTTP API   http://%s  (/healthz, /readyz, /metrics; /api/v1/... with "Authorization: Bearer $(cat %s)")
  Grafana    run "make grafana" in another terminal, then open http://127.0.0.1:3000/ (datasource %s, database semko)
  Fleet      %d keypads at %d sites of %d organisations (seed %d), fleet file %s
  Mail       %s/ (negative-vote notices land here; ls %s; cat %s/<file>.eml)
  Console    http://%s/  (one account per role; names and passwords: cat %s)
  Incidents  http://%s/api/v1/incidents (a simulated trickle; e-mail intake smtp://127.0.0.1:2526, to cs+<site>@semko.local)
  Log        %s

`, db.URL(), db.URL(), cfg.MQTT.Addr, cfg.HTTP.Addr, filepath.Join(o.varDir, "api-token"), db.URL(),
		len(model.Devices), o.orgs*o.sites, o.orgs, o.seed, cfg.FleetFile, mailDir, mailDir, mailDir,
		cfg.HTTP.Addr, accountsFile, cfg.HTTP.Addr, o.logPath)

	waitSurvey := startSurveySim(fleetCtx, log.With("part", "survey-sim"), "http://"+cfg.HTTP.Addr, cfg.HTTP.Token, mailDir, model, 6*time.Second)

	tick := time.NewTicker(o.every)
	defer tick.Stop()
	var runErr error
	fleetRunning, backendRunning := true, true
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-fleetDone:
			fleetRunning = false
			if err != nil && !errors.Is(err, context.Canceled) {
				runErr = fmt.Errorf("fleet: %w", err)
			}
			break loop
		case err := <-backendDone:
			backendRunning = false
			runErr = fmt.Errorf("backend stopped: %w", err)
			break loop
		case <-tick.C:
			s := app.Summary()
			w := app.WriterStats()
			share := "-"
			if s.VotesLastMinute > 0 {
				share = fmt.Sprintf("%.0f%%", 100*s.SatisfiedShareLastMinute)
			}
			fmt.Printf("%s  online %d/%d  last minute: %d activations, %d votes, %s satisfied (4-5)  |  written %d points, backlog %d\n",
				time.Now().Format("15:04:05"), s.UnitsOnline, s.UnitsKnown, s.ActivationsLastMinute, s.VotesLastMinute, share,
				w.PointsWritten, w.Backlog.PendingRecords)
		}
	}
	fmt.Println("\nstopping: fleet, then backend, then InfluxDB...")
	stopFleet()
	waitSurvey()
	if fleetRunning {
		if err := <-fleetDone; err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("fleet stopped", "err", err)
		}
	}
	stopBackend()
	if backendRunning {
		if err := <-backendDone; err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("backend: %w", err))
		}
	}
	return runErr
}

// writeFleetFile writes the fleet file unless the one from an earlier run
// describes the same fleet. Rewriting it would change every salted secret
// hash, and the backend applies a changed file over what support changed
// through the API since.
func writeFleetFile(model *fleet.Model, path string) error {
	spec := fmt.Sprintf("%+v\n", model.Spec)
	specPath := path + ".spec"
	if old, err := os.ReadFile(specPath); err == nil && string(old) == spec {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
	}
	if err := model.WriteFleetFile(path, broker.HashSecret); err != nil {
		return err
	}
	return os.WriteFile(specPath, []byte(spec), 0o640)
}

// apiToken reads the dev API token, making one on the first run.
func apiToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
		return string(b), nil
	}
	buf := make([]byte, 16)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	tok := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(tok), 0o600); err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	return tok, nil
}

func waitHTTP(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
