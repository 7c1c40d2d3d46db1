package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/firmware-sim/loadgen"
	"github.com/semko/semko/internal/natslocal"
)

// runCluster (target 7) is target 1 through the clustered deployment
// (deploy/cluster): the same units, window and per-unit rate, spread over
// three NATS nodes, consumed by two backend replicas sharing the durable,
// into InfluxDB exactly once. Then one node is SIGKILLed and the figure is
// the time until every unit is connected again (to the other two).
func runCluster(ctx context.Context, e *env) (Result, error) {
	res := Result{Goal: "votes/s beside target 1 (embedded); all units back after a node's death"}
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
	const window, db = 4, "t7"
	dir := filepath.Join(e.cfg.Dir, db)
	fleetFile, devs, err := makeFleet(dir, units)
	if err != nil {
		return res, err
	}
	if err := e.newDatabase(ctx, db); err != nil {
		return res, err
	}

	// Three nodes whose auth callout the replicas serve.
	if _, err := natslocal.Ensure(ctx, e.log); err != nil {
		return res, err
	}
	issuer, err := nkeys.CreateAccount()
	if err != nil {
		return res, err
	}
	issuerPub, _ := issuer.PublicKey()
	issuerSeed, _ := issuer.Seed()
	seedFile := filepath.Join(dir, "callout.seed")
	if err := os.WriteFile(seedFile, issuerSeed, 0o600); err != nil {
		return res, err
	}
	const user, secret = "semko-backend", "bench-cluster-secret"
	natsDir := filepath.Join(dir, "nats")
	if err := os.RemoveAll(natsDir); err != nil {
		return res, err
	}
	c, err := natslocal.Start(ctx, natslocal.Options{Dir: natsDir, Logger: e.log.With("part", "nats"),
		Auth: &natslocal.Auth{User: user, Password: secret, CalloutIssuer: issuerPub}})
	if err != nil {
		return res, err
	}
	defer func() { _ = c.Stop() }()
	var natsURLs []string
	for _, n := range c.Nodes {
		natsURLs = append(natsURLs, n.ClientURL())
	}
	inCluster := func(cfg *backend.Config) {
		cfg.MQTT.Cluster = backend.ClusterMQTTConfig{NATSURLs: natsURLs, MQTTURLs: c.MQTTURLs(),
			Username: user, Secret: secret, CalloutSeedFile: seedFile}
	}

	// Two replicas in this process, each with its own data directory.
	var stacks []*stack
	defer func() {
		for _, s := range stacks {
			_ = s.stop()
		}
	}()
	for i := range 2 {
		s, err := e.startStack(ctx, filepath.Join(dir, fmt.Sprintf("r%d", i+1)), fleetFile, db, "127.0.0.1:0", inCluster)
		if err != nil {
			return res, err
		}
		stacks = append(stacks, s)
	}
	for _, s := range stacks {
		if err := waitFor(ctx, 2*time.Minute, 100*time.Millisecond, "replica consuming", func() (bool, error) {
			err := s.app.Ready()
			return err == nil, err
		}); err != nil {
			return res, err
		}
	}

	memBefore := nodesMem(ctx, c)
	f, err := startLocal(ctx, loadgen.Options{Broker: strings.Join(c.MQTTURLs(), ","), Devices: devs,
		Window: window, MaxRate: unitRate, Jitter: time.Second, UnitsPerAddr: 40, Logger: e.log})
	if err != nil {
		return res, err
	}
	defer f.stop()
	if err := waitConnected(ctx, f, 3*time.Minute); err != nil {
		return res, err
	}
	memConnected := nodesMem(ctx, c)
	perConn := float64(memConnected-memBefore) / float64(units) / 1024
	e.step("  %d units connected over 3 nodes, 2 replicas (nodes' RSS +%.1f KiB a connection); pressing for %s", units, perConn, dur)

	start := time.Now()
	pressed, ackRate, err := e.press(ctx, f, window, dur)
	if err != nil {
		return res, err
	}
	// The replicas drain what the stream holds more slowly than the nodes
	// take it in (the stream keeps it safe meanwhile): a longer wait.
	landed, err := e.waitVotes(ctx, db, int64(pressed), 20*time.Minute)
	if err != nil {
		return res, err
	}
	rate := float64(pressed) / landed.Sub(start).Seconds()

	// A node dies: its units reconnect to the next node in their list.
	victim := c.Nodes[0]
	e.step("  SIGKILL %s; waiting for every unit to be connected again", victim.Name)
	victim.Kill()
	died := time.Now()
	if err := waitFor(ctx, time.Minute, 10*time.Millisecond, "units noticing the node's death", func() (bool, error) {
		s := f.Stats()
		return s.Connected < s.Units, nil
	}); err != nil {
		return res, err
	}
	if err := waitConnected(ctx, f, 5*time.Minute); err != nil {
		return res, err
	}
	back := time.Since(died)

	res.Figure = fmt.Sprintf("%.0f votes/s; all %d units back %.1f s after a node's death", rate, units, back.Seconds())
	res.Met = true // a comparison, not a target: the row beside target 1 is the point
	res.Note = fmt.Sprintf("same load as target 1 (%d units, window %d, %d/s cap each) through 3 NATS nodes (R3 $MQTT_msgs) and 2 replicas in this process; %d votes in %.1f s, all in InfluxDB once; cluster acknowledged %.0f/s while pressing; nodes' RSS %.1f KiB a publishing connection (no subscriptions); reconnect: loadgen jitter 1 s, backoff from 1 s",
		units, window, unitRate, pressed, landed.Sub(start).Seconds(), ackRate, perConn)
	if dur < time.Minute {
		res.Note += "; shorter than 60 s"
	}
	return res, nil
}

// nodesMem is the three nodes' resident memory in bytes, from their
// monitoring endpoint's /varz (0 for a node that does not answer).
func nodesMem(ctx context.Context, c *natslocal.Cluster) int64 {
	var total int64
	for _, n := range c.Nodes {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.MonAddr+"/varz", nil)
		if err != nil {
			continue
		}
		resp, err := metricsClient.Do(req)
		if err != nil {
			continue
		}
		var v struct {
			Mem int64 `json:"mem"`
		}
		if json.NewDecoder(resp.Body).Decode(&v) == nil {
			total += v.Mem
		}
		resp.Body.Close()
	}
	return total
}
