// Command semko-cluster is what `make cluster` starts: the clustered
// deployment (deploy/cluster) on one machine. Three nats-server nodes with
// JetStream, two or more backend replicas (`semko serve` processes in
// cluster mode sharing the durable consumer and serving the auth callout),
// a local InfluxDB 1.8.10 and a simulated fleet whose edges are spread over
// the three nodes. It prints a status line every few seconds and stops
// everything it started, by PID, on Ctrl-C.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/semko/semko/broker"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/natslocal"
)

func main() { os.Exit(run(os.Args[1:])) }

type options struct {
	varDir                string
	seed                  int64
	orgs, sites, counters int
	replicas              int
	interval, every       time.Duration
}

func run(args []string) int {
	fs := flag.NewFlagSet("semko-cluster", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.varDir, "var", "var/cluster", "where everything this run produces lives")
	fs.Int64Var(&o.seed, "seed", 1, "fleet seed")
	fs.IntVar(&o.orgs, "orgs", 3, "organisations in the simulated fleet")
	fs.IntVar(&o.sites, "sites", 2, "sites per organisation")
	fs.IntVar(&o.counters, "counters", 4, "counters (one keypad each) per site")
	fs.IntVar(&o.replicas, "replicas", 2, "backend replicas")
	fs.DurationVar(&o.interval, "service-interval", 10*time.Second, "mean time between services at one counter")
	fs.DurationVar(&o.every, "status-every", 5*time.Second, "how often to print the status line")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.replicas < 1 {
		fmt.Fprintln(os.Stderr, "-replicas must be at least 1")
		return 2
	}
	if err := os.MkdirAll(o.varDir, 0o750); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logPath := filepath.Join(o.varDir, "semko-cluster.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer logFile.Close()
	log := slog.New(slog.NewMultiHandler(
		slog.NewTextHandler(logFile, nil),
		slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}),
	))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cluster(ctx, log, o, logPath); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("semko-cluster", "err", err)
		return 1
	}
	return 0
}

const backendUser = "semko-backend"

func cluster(ctx context.Context, log *slog.Logger, o options, logPath string) error {
	semko, err := sibling("semko")
	if err != nil {
		return err
	}
	if _, err := natslocal.Ensure(ctx, log); err != nil {
		return err
	}
	if _, err := influxlocal.Ensure(ctx, log); err != nil {
		return err
	}

	// The callout's account key: the nodes trust its public key, the
	// replicas sign with its seed.
	issuer, err := nkeys.CreateAccount()
	if err != nil {
		return fmt.Errorf("callout key: %w", err)
	}
	issuerPub, _ := issuer.PublicKey()
	issuerSeed, _ := issuer.Seed()
	seedFile := filepath.Join(o.varDir, "callout.seed")
	if err := os.WriteFile(seedFile, issuerSeed, 0o600); err != nil {
		return err
	}
	password := randomHex(16)

	// 1. Three NATS nodes on free loopback ports, fresh data each run: the
	// callout key above is new every run.
	natsDir := filepath.Join(o.varDir, "nats")
	if err := os.RemoveAll(natsDir); err != nil {
		return err
	}
	nc, err := natslocal.Start(ctx, natslocal.Options{Dir: natsDir, Logger: log.With("part", "nats"),
		Auth: &natslocal.Auth{User: backendUser, Password: password, CalloutIssuer: issuerPub}})
	if err != nil {
		return err
	}
	defer func() {
		if err := nc.Stop(); err != nil {
			log.Warn("stop nats nodes", "err", err)
		}
	}()

	// 2. InfluxDB.
	db, err := influxlocal.Start(ctx, influxlocal.Options{Dir: filepath.Join(o.varDir, "influxdb"),
		Database: "semko", Logger: log.With("part", "influxd")})
	if err != nil {
		return err
	}
	defer func() {
		if err := db.Stop(); err != nil {
			log.Warn("stop influxd", "err", err)
		}
	}()

	// 3. The replicas, each a `semko serve` with its own data directory,
	// the same fleet file, InfluxDB and cluster.
	model := fleet.Generate(fleet.Spec{Seed: o.seed, Orgs: o.orgs, SitesPerOrg: o.sites, CountersPerSite: o.counters})
	fleetFile := filepath.Join(o.varDir, "fleet.yaml")
	if err := model.WriteFleetFile(fleetFile, broker.HashSecret); err != nil {
		return fmt.Errorf("fleet file: %w", err)
	}
	token := randomHex(16)
	if err := os.WriteFile(filepath.Join(o.varDir, "api-token"), []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	var natsURLs []string
	for _, n := range nc.Nodes {
		natsURLs = append(natsURLs, n.ClientURL())
	}
	var reps []*replica
	defer func() {
		for _, r := range reps {
			r.stop(log)
		}
	}()
	for i := range o.replicas {
		r, err := startReplica(ctx, semko, filepath.Join(o.varDir, fmt.Sprintf("replica%d", i+1)), replicaConfig{
			fleetFile: fleetFile, natsURLs: natsURLs, mqttURLs: nc.MQTTURLs(), seedFile: seedFile,
			influx: db.URL()}, []string{"SEMKO_NATS_SECRET=" + password, "SEMKO_API_TOKEN=" + token})
		if err != nil {
			return err
		}
		reps = append(reps, r)
	}
	for _, r := range reps {
		if err := r.waitReady(ctx, 90*time.Second); err != nil {
			return err
		}
	}

	// 4. The fleet: every edge lists the three nodes and starts at one
	// chosen by its id, so the fleet spreads over the nodes.
	tally := fleet.NewTally(model)
	fleetCtx, stopFleet := context.WithCancel(ctx)
	defer stopFleet()
	fleetDone := make(chan error, 1)
	go func() {
		fleetDone <- fleet.RunWithTally(fleetCtx, model, fleet.Options{
			Broker: strings.Join(nc.MQTTURLs(), ","), DataDir: filepath.Join(o.varDir, "edges"),
			ServiceInterval: o.interval, Window: 20 * time.Second, Participation: 0.7, StrayPresses: 0.02,
			DrainTimeout: 5 * time.Second, Logger: log.With("part", "fleet"),
		}, tally)
	}()

	fmt.Printf("\nSemko cluster is running. Ctrl-C stops everything.\n")
	for _, n := range nc.Nodes {
		fmt.Printf("  NATS %s  mqtt %s  nats %s  monitor http://%s  log %s\n", n.Name, n.MQTTURL(), n.ClientURL(), n.MonAddr, n.LogPath())
	}
	for i, r := range reps {
		fmt.Printf("  replica %d  http://%s  pid %d  log %s\n", i+1, r.httpAddr, r.cmd.Process.Pid, r.logPath)
	}
	fmt.Printf("  InfluxDB   %s (database semko)\n  Fleet      %d keypads, seed %d\n  API token  %s\n  Log        %s\n\n",
		db.URL(), len(model.Devices), o.seed, filepath.Join(o.varDir, "api-token"), logPath)

	tick := time.NewTicker(o.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			stopFleet()
			if err := <-fleetDone; err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("fleet", "err", err)
			}
			return nil
		case err := <-fleetDone:
			return fmt.Errorf("fleet stopped: %w", err)
		case <-tick.C:
			fmt.Println(status(ctx, tally, db, reps))
		}
	}
}

// status is one line: votes pressed, votes in InfluxDB, each replica's
// health and which one runs the scheduled jobs.
func status(ctx context.Context, tally *fleet.Tally, db *influxlocal.Server, reps []*replica) string {
	tot := tally.Total()
	stored := "?"
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if s, err := db.Query(qctx, `SELECT count(score) FROM vote WHERE "valid" = 'true'`); err == nil && len(s) > 0 && len(s[0].Values) > 0 {
		if n, err := s[0].Int(0, "count"); err == nil {
			stored = fmt.Sprint(n)
		}
	}
	var rs []string
	for i, r := range reps {
		st := "down"
		if r.get(ctx, "/readyz") == http.StatusOK {
			st = "ready"
		}
		if r.leads(ctx) {
			st += ",leader"
		}
		rs = append(rs, fmt.Sprintf("r%d %s", i+1, st))
	}
	valid := 0
	for _, n := range tot.Scores {
		valid += n
	}
	return fmt.Sprintf("%s  votes pressed %d (valid %d), valid in InfluxDB %s  %s",
		time.Now().Format("15:04:05"), tot.Votes, valid, stored, strings.Join(rs, "  "))
}

// sibling finds a program built beside this one (make build puts them in
// bin/).
func sibling(name string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(exe), name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found beside %s (run make build): %w", name, exe, err)
	}
	return p, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// freeAddr picks a free loopback port.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// replica is one `semko serve` child process.
type replica struct {
	cmd      *exec.Cmd
	done     chan struct{}
	httpAddr string
	token    string
	logPath  string
}

type replicaConfig struct {
	fleetFile, seedFile, influx string
	natsURLs, mqttURLs          []string
}

func startReplica(ctx context.Context, semko, dir string, c replicaConfig, env []string) (*replica, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	mqttAddr, err := freeAddr() // the embedded broker's address, unused in cluster mode
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`data_dir: %s
fleet_file: %s
mqtt:
  addr: %s
  cluster:
    nats_urls: [%s]
    mqtt_urls: [%s]
    username: %s
    callout_seed_file: %s
http:
  addr: %s
influx:
  url: %s
  bucket: semko
`, filepath.Join(dir, "data"), c.fleetFile, mqttAddr, strings.Join(c.natsURLs, ", "), strings.Join(c.mqttURLs, ", "),
		backendUser, c.seedFile, httpAddr, c.influx)
	cfgPath := filepath.Join(dir, "semko.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o640); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "semko.log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.CommandContext(context.WithoutCancel(ctx), semko, "serve", "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	// Its own process group: Ctrl-C reaches this program, which stops the
	// replicas in order; Pdeathsig: nothing outlives this program.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start replica: %w", err)
	}
	r := &replica{cmd: cmd, done: make(chan struct{}), httpAddr: httpAddr, logPath: logPath}
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "SEMKO_API_TOKEN="); ok {
			r.token = v
		}
	}
	go func() { _ = cmd.Wait(); close(r.done) }()
	return r, nil
}

// stop sends SIGTERM to the replica's PID and SIGKILL after 20 s.
func (r *replica) stop(log *slog.Logger) {
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		log.Warn("replica did not stop in 20 s; killing it", "pid", r.cmd.Process.Pid)
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

func (r *replica) get(ctx context.Context, path string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.httpAddr+path, nil)
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// leads reads semko_elector_leader from the replica's metrics.
func (r *replica) leads(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.httpAddr+"/metrics", nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if strings.HasPrefix(line, "semko_elector_leader{") {
			return strings.HasSuffix(line, " 1")
		}
	}
	return false
}

func (r *replica) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			return fmt.Errorf("replica exited; see %s", r.logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		if r.get(ctx, "/readyz") == http.StatusOK {
			return nil
		}
	}
	return fmt.Errorf("replica not ready within %s; see %s", limit, r.logPath)
}
