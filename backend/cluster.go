package backend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/semko/semko/backend/elector"
	"github.com/semko/semko/backend/intake/mqttin"
	"github.com/semko/semko/backend/intake/natsin"
	"github.com/semko/semko/backend/natsauth"
)

// ClusterMQTTConfig, when NATSURLs is set, makes a NATS cluster with
// JetStream the device front door (deploy/cluster/README.md): upstream
// messages come from a durable consumer several backend replicas share,
// downstream ones go out over MQTT through any node, and, with a callout
// seed, this backend serves the cluster's auth callout from the registry.
type ClusterMQTTConfig struct {
	// NATSURLs are the nodes' NATS client URLs; MQTTURLs their MQTT
	// listeners (for downstream publishes).
	NATSURLs []string `yaml:"nats_urls"`
	MQTTURLs []string `yaml:"mqtt_urls"`
	// Username is the nodes' auth_user for the backend; its secret comes
	// from SEMKO_NATS_SECRET.
	Username string `yaml:"username"`
	Secret   string `yaml:"-"`
	// Durable is the consumer the replicas share (default semko-backend).
	Durable string `yaml:"durable"`
	// Replicas of $MQTT_msgs and the durable: the number of nodes.
	Replicas int `yaml:"replicas"`
	// AckWait is how long a message a replica took and did not
	// acknowledge (it died) waits before another replica gets it.
	AckWait time.Duration `yaml:"ack_wait"`
	// CalloutSeedFile holds the account seed ("SA...") whose public key
	// is the nodes' auth_callout issuer; SEMKO_NATS_CALLOUT_SEED may hold
	// the seed instead. Without either, this replica serves no callout.
	CalloutSeedFile string `yaml:"callout_seed_file"`
	// ScheduleLease is the lease of the replica that runs the scheduled
	// jobs (backend/elector; default 10 s). While it lives it runs every
	// slot; a dead leader's next slots are claimed by another replica one
	// second late, and the lease itself moves within ScheduleLease*4/3.
	ScheduleLease time.Duration `yaml:"schedule_lease"`
	// Workers accept messages from the durable concurrently (default 256,
	// the size of a spool group commit at most); MaxAckPending bounds the
	// messages a replica holds unacknowledged (default 1024).
	Workers       int `yaml:"workers"`
	MaxAckPending int `yaml:"max_ack_pending"`
}

func (c ClusterMQTTConfig) enabled() bool { return len(c.NATSURLs) > 0 }

func (c ClusterMQTTConfig) validate() error {
	if !c.enabled() {
		return nil
	}
	if len(c.MQTTURLs) == 0 || c.Username == "" {
		return errors.New("mqtt: cluster.nats_urls needs cluster.mqtt_urls and cluster.username")
	}
	return nil
}

// clusterSource is the backend as a client of a NATS cluster: consumer,
// downstream publisher and (optionally) auth callout on one connection.
type clusterSource struct {
	nc        *nats.Conn
	consumer  *natsin.Consumer
	publisher *natsin.Publisher
	auth      *natsauth.Service // nil: another process serves the callout
	elector   *elector.Elector  // which replica runs the scheduled jobs
	slots     *elector.Slots    // one run per job and period (cluster_jobs.go)
	urls      string
}

func (a *App) newCluster(intake mqttin.Acceptor, onConnect func()) (*clusterSource, error) {
	cc := a.cfg.MQTT.Cluster
	secret := cc.Secret
	if secret == "" {
		secret = os.Getenv("SEMKO_NATS_SECRET")
	}
	log := a.log.With("part", "cluster")
	nc, err := nats.Connect(strings.Join(cc.NATSURLs, ","),
		nats.Name("semko-backend"), nats.UserInfo(cc.Username, secret),
		// Never give up: the cluster outlives any one node, and a backend
		// that stopped reconnecting would stop acknowledging.
		nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("nats: disconnected", "err", err) }),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats: reconnected", "url", c.ConnectedUrlRedacted()) }))
	if err != nil {
		return nil, fmt.Errorf("nats connect: %w", err)
	}
	s := &clusterSource{nc: nc, urls: strings.Join(cc.NATSURLs, ",")}
	fail := func(err error) (*clusterSource, error) { nc.Close(); return nil, err }
	s.consumer, err = natsin.New(natsin.Options{
		Conn: nc, Intake: intake, Durable: cc.Durable, Replicas: cc.Replicas, AckWait: cc.AckWait,
		Workers: cc.Workers, MaxAckPending: cc.MaxAckPending,
		Logger: log, Registerer: a.metrics,
	})
	if err != nil {
		return fail(err)
	}
	s.publisher, err = natsin.NewPublisher(natsin.PublisherOptions{
		URLs: cc.MQTTURLs, Username: cc.Username, Secret: secret, OnConnect: onConnect,
		Logger: log, Registerer: a.metrics,
	})
	if err != nil {
		return fail(err)
	}
	if err := s.newScheduleElection(a, cc, log); err != nil {
		return fail(err)
	}
	seed := []byte(os.Getenv("SEMKO_NATS_CALLOUT_SEED"))
	if cc.CalloutSeedFile != "" {
		if seed, err = os.ReadFile(cc.CalloutSeedFile); err != nil {
			return fail(fmt.Errorf("callout seed: %w", err))
		}
	}
	if len(seed) > 0 {
		kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
		if err != nil {
			return fail(fmt.Errorf("callout seed: %w", err))
		}
		if s.auth, err = natsauth.New(natsauth.Options{
			Conn: nc, Issuer: kp, Credentials: a.creds, Logger: log, Registerer: a.metrics,
		}); err != nil {
			return fail(err)
		}
	}
	return s, nil
}

// Run serves the callout, the consumer and the publisher until ctx ends or
// one fails; on return no Accept is running and the connection is closed.
func (s *clusterSource) Run(ctx context.Context) error {
	defer s.nc.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parts := []Part{s.consumer, s.publisher, s.elector}
	if s.auth != nil {
		parts = append(parts, s.auth)
	}
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Go(func() {
			if errs[i] = p.Run(ctx); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close releases the connection when Run is never called.
func (s *clusterSource) Close() error { s.nc.Close(); return nil }

func (s *clusterSource) Publish(topic string, payload []byte, retain bool, qos byte) error {
	return s.publisher.Publish(topic, payload, retain, qos)
}

func (s *clusterSource) ready() error {
	if err := s.consumer.Ready(); err != nil {
		return err
	}
	if !s.publisher.Connected() {
		return natsin.ErrNotConnected
	}
	return nil
}

func (s *clusterSource) addr() string    { return s.urls }
func (s *clusterSource) tlsAddr() string { return "" }
