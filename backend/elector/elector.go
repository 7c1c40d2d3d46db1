// Package elector elects one backend replica to run the scheduled jobs
// (diagnostics, lifecycle, roll-ups, aggregates, reports) when several
// replicas share a NATS cluster (deploy/cluster). It is a lease in a
// JetStream key-value bucket, replicated on the cluster's nodes, and
// implements gocron's Elector, so a scheduler built with
// gocron.WithDistributedElector runs its jobs on the leader only.
//
// How the lease works. The bucket's TTL is the lease: a key not written
// for Lease is removed by the server. A candidate takes the lead with
// Create (it succeeds only while nobody holds the key); the leader renews
// every Lease/3 with Update at the revision it last wrote (compare and
// set), so two replicas can never both renew. A leader that cannot renew
// (dead, or cut off from the cluster) stops considering itself leader
// Lease/2 after its last successful renewal, before the server lets the
// key expire and another replica takes over; a replica that dies hands
// the schedule over within Lease + Lease/3 (the key's expiry plus one
// campaign interval). A leader that stops cleanly deletes the key, so the
// next one takes over at its next campaign.
package elector

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for Options.
const (
	DefaultBucket = "semko_leader"
	DefaultKey    = "scheduler"
	DefaultLease  = 10 * time.Second
)

// ErrNotLeader is IsLeader's answer on every replica but the leader.
var ErrNotLeader = errors.New("elector: not the leader")

// Options configures an Elector. JS is required.
type Options struct {
	JS jetstream.JetStream
	// Bucket and Key name the lease; one key per schedule that must run
	// once per cluster (one for all of them is enough).
	Bucket, Key string
	// ID identifies this replica in the key's value (default: random).
	ID string
	// Lease bounds how long a dead leader blocks the schedule (see the
	// package comment). Replicas must agree on it: the bucket keeps the
	// first one's.
	Lease    time.Duration
	Replicas int // of the bucket: the number of nodes (default 3)

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time // default time.Now
}

// Elector campaigns for the lease until its Run ends.
type Elector struct {
	opts   Options
	leader prometheus.Gauge

	mu      sync.Mutex
	rev     uint64    // revision of our last write; 0: not holding the key
	renewed time.Time // when our last write was confirmed
	kv      jetstream.KeyValue
}

// New checks opts.
func New(opts Options) (*Elector, error) {
	if opts.JS == nil {
		return nil, errors.New("elector: JS is required")
	}
	if opts.Bucket == "" {
		opts.Bucket = DefaultBucket
	}
	if opts.Key == "" {
		opts.Key = DefaultKey
	}
	if opts.ID == "" {
		opts.ID = randomID()
	}
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 3
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	e := &Elector{opts: opts, leader: prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "semko_elector_leader",
		Help:        "1 while this replica holds the lease to run the cluster's scheduled jobs.",
		ConstLabels: prometheus.Labels{"key": opts.Key},
	})}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(e.leader); err != nil {
			return nil, fmt.Errorf("elector metrics: %w", err)
		}
	}
	return e, nil
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ID is this replica's identity in the lease.
func (e *Elector) ID() string { return e.opts.ID }

// IsLeader is gocron's Elector: nil while this replica holds a lease it
// renewed less than Lease/2 ago.
func (e *Elector) IsLeader(context.Context) error {
	if e.Leader() {
		return nil
	}
	return ErrNotLeader
}

// Leader reports whether this replica leads now.
func (e *Elector) Leader() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rev != 0 && e.opts.Now().Sub(e.renewed) < e.opts.Lease/2
}

// Run campaigns every Lease/3 until ctx ends, then resigns if it leads.
func (e *Elector) Run(ctx context.Context) error {
	tick := time.NewTicker(e.opts.Lease / 3)
	defer tick.Stop()
	defer e.resign()
	for {
		e.campaign(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// campaign renews the lease we hold or tries to take a free one.
func (e *Elector) campaign(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, e.opts.Lease/3)
	defer cancel()
	kv, err := e.bucket(cctx)
	if err != nil {
		e.opts.Logger.Warn("elector: lease bucket unavailable", "err", err)
		e.update()
		return
	}
	e.mu.Lock()
	rev := e.rev
	e.mu.Unlock()
	var newRev uint64
	if rev != 0 {
		newRev, err = kv.Update(cctx, e.opts.Key, []byte(e.opts.ID), rev)
	} else {
		newRev, err = kv.Create(cctx, e.opts.Key, []byte(e.opts.ID))
	}
	e.mu.Lock()
	switch {
	case err == nil:
		if rev == 0 {
			e.opts.Logger.Info("elector: took the lead", "key", e.opts.Key, "id", e.opts.ID)
		}
		e.rev, e.renewed = newRev, e.opts.Now()
	case errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err):
		// Someone else holds the key (or took it after ours expired).
		if rev != 0 {
			e.opts.Logger.Warn("elector: lost the lead", "key", e.opts.Key, "id", e.opts.ID)
		}
		e.rev = 0
	default:
		// The cluster did not answer: keep what we had; Leader() lapses by
		// itself Lease/2 after the last renewal.
		e.opts.Logger.Debug("elector: campaign failed", "err", err)
	}
	e.mu.Unlock()
	e.update()
}

// isWrongSequence: an Update at a revision that is no longer the key's.
func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

func (e *Elector) update() {
	if e.Leader() {
		e.leader.Set(1)
	} else {
		e.leader.Set(0)
	}
}

// bucket opens (creating if needed) the lease bucket once.
func (e *Elector) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	e.mu.Lock()
	kv := e.kv
	e.mu.Unlock()
	if kv != nil {
		return kv, nil
	}
	kv, err := e.opts.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: e.opts.Bucket, Description: "Semko: which backend replica runs the scheduled jobs (backend/elector)",
		History: 1, TTL: e.opts.Lease, Replicas: e.opts.Replicas, Storage: jetstream.FileStorage,
	})
	if err != nil {
		// Another replica created it with other settings: use it as it is.
		if kv, err2 := e.opts.JS.KeyValue(ctx, e.opts.Bucket); err2 == nil {
			e.mu.Lock()
			e.kv = kv
			e.mu.Unlock()
			return kv, nil
		}
		return nil, err
	}
	e.mu.Lock()
	e.kv = kv
	e.mu.Unlock()
	return kv, nil
}

// resign deletes the key if we hold it, so the next leader need not wait
// for the lease to expire.
func (e *Elector) resign() {
	e.mu.Lock()
	rev, kv := e.rev, e.kv
	e.rev = 0
	e.mu.Unlock()
	e.leader.Set(0)
	if rev == 0 || kv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := kv.Delete(ctx, e.opts.Key, jetstream.LastRevision(rev)); err != nil {
		e.opts.Logger.Warn("elector: could not resign; the lease expires by itself", "err", err)
		return
	}
	e.opts.Logger.Info("elector: resigned", "key", e.opts.Key, "id", e.opts.ID)
}
