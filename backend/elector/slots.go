package elector

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Slots makes the scheduled jobs of several replicas run once per cluster
// and period: every replica's scheduler fires at the same instants (a
// duration job starts on a multiple of its period, a cron job fires on the
// minute), and before a run each replica claims the run's slot, a key
// "<job>.<slot>" created in a JetStream key-value bucket. Create succeeds
// for one replica only, so each slot runs once: never twice, and never
// zero times while one replica lives, because every live replica tries
// every slot. A dead replica therefore hands nothing over: the next slot is
// claimed by whoever is alive (with Leader set, the lease holder claims
// first and the others Defer later, so the handover time is Defer, plus
// the bucket's answer during a node's election).
//
// Why not the lease (Elector) with gocron.WithDistributedElector: a slot
// that falls in the lease's handover (up to Lease + Lease/3) runs nowhere,
// and two replicas whose schedules are out of phase may both run in one
// period around a handover. Measured in faults.TestScheduleOncePerPeriod.
//
// Slots is gocron's own recommendation for distributed duration jobs (a
// Locker plus WithStartAt on a multiple of the period, see gocron's
// Locker); it relies on the replicas' clocks agreeing to well within half
// a period (NTP), as the slot is the run time rounded to the nearest
// multiple of the period.
type Slots struct {
	opts SlotOptions
	runs *prometheus.CounterVec

	mu sync.Mutex
	kv jetstream.KeyValue
}

// SlotOptions configures Slots. JS is required.
type SlotOptions struct {
	JS jetstream.JetStream
	// Bucket holds one key per claimed slot (default semko_runs).
	Bucket string
	// Keep is how long a claimed slot's key stays (the bucket's TTL; default
	// one hour): longer than any clock difference between replicas.
	Keep     time.Duration
	ID       string // this replica in the keys' values (default: random)
	Replicas int    // of the bucket: the number of nodes (default 3)
	// Timeout bounds one claim (default 3 s): a slot not claimed by then
	// is not run by this replica.
	Timeout time.Duration
	// Leader, if set (Elector.Leader), keeps the runs on one replica while
	// it lives: a replica that does not lead waits Defer (at most a
	// quarter of the period) before it claims, so the leader's claim lands
	// first. Jobs that keep state between runs (diagnostics' windows)
	// then see every run; when the leader dies, the next slot is claimed
	// by another replica Defer late.
	Leader func() bool
	Defer  time.Duration // default 1 s

	Registerer prometheus.Registerer
	Now        func() time.Time // default time.Now
}

// Default bucket for Slots.
const DefaultSlotBucket = "semko_runs"

// ErrSlotTaken is a claim's answer when another replica runs the slot.
var ErrSlotTaken = errors.New("elector: slot run by another replica")

// NewSlots checks opts.
func NewSlots(opts SlotOptions) (*Slots, error) {
	if opts.JS == nil {
		return nil, errors.New("elector: slots: JS is required")
	}
	if opts.Bucket == "" {
		opts.Bucket = DefaultSlotBucket
	}
	if opts.Keep <= 0 {
		opts.Keep = time.Hour
	}
	if opts.ID == "" {
		opts.ID = randomID()
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 3
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 3 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Defer <= 0 {
		opts.Defer = time.Second
	}
	s := &Slots{opts: opts, runs: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "semko_schedule_slots_total",
		Help: "Scheduled job slots by outcome on this replica: ran (claimed here), taken (another replica runs it), failed (the bucket did not answer: not run here).",
	}, []string{"job", "result"})}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(s.runs); err != nil {
			return nil, fmt.Errorf("slots metrics: %w", err)
		}
	}
	return s, nil
}

// Every is the gocron.Locker for jobs that fire every period: give it to
// the job with gocron.WithDistributedJobLocker, and start a duration job at
// Align(now, period). Cron jobs use period time.Minute (they fire on
// minutes).
func (s *Slots) Every(period time.Duration) gocron.Locker {
	return locker{s: s, period: period}
}

// Align is the first multiple of period after now: the start of a duration
// job that every replica must fire at the same instants.
func Align(now time.Time, period time.Duration) time.Time {
	return now.Truncate(period).Add(period)
}

// JobOptions start a duration job at once in a process of its own
// (cluster nil), or, in a cluster, on the next multiple of period after now
// with a claim of the slot before each run.
func JobOptions(cluster func(time.Duration) gocron.Locker, now time.Time, period time.Duration) []gocron.JobOption {
	if cluster == nil {
		return []gocron.JobOption{gocron.WithStartAt(gocron.WithStartImmediately())}
	}
	return []gocron.JobOption{
		gocron.WithStartAt(gocron.WithStartDateTime(Align(now, period))),
		gocron.WithDistributedJobLocker(cluster(period)),
	}
}

type locker struct {
	s      *Slots
	period time.Duration
}

type noUnlock struct{}

// Unlock keeps the key: the slot stays claimed (it ran), until Keep.
func (noUnlock) Unlock(context.Context) error { return nil }

// SlotAt is the slot a run firing at now belongs to: the multiple of
// period at or before now, allowing the firing to be early by an eighth of
// the period (at most 5 s: a wall clock slewed by NTP against the
// scheduler's monotonic timers). Runs fire on the multiples (Align), never
// early by the scheduler's own clock, but late under load: a run late by
// up to seven eighths of its period still claims its own slot, where
// rounding to the nearest multiple gave it to the next slot from half a
// period on (and a slot then ran twice while another ran not at all).
func SlotAt(now time.Time, period time.Duration) time.Time {
	return now.Add(min(period/8, 5*time.Second)).Truncate(period)
}

// Lock claims the slot of a run firing now, for job name.
func (l locker) Lock(ctx context.Context, name string) (gocron.Lock, error) {
	slot := SlotAt(l.s.opts.Now(), l.period)
	if lead := l.s.opts.Leader; lead != nil && !lead() {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(l.s.opts.Defer, l.period/4)):
		}
	}
	err := l.s.Claim(ctx, name, slot)
	switch {
	case err == nil:
		l.s.runs.WithLabelValues(name, "ran").Inc()
		return noUnlock{}, nil
	case errors.Is(err, ErrSlotTaken):
		l.s.runs.WithLabelValues(name, "taken").Inc()
	default:
		l.s.runs.WithLabelValues(name, "failed").Inc()
	}
	return nil, err
}

// Claim makes this replica the one that runs job's slot, or says
// ErrSlotTaken. A create whose answer was lost (a node died) is retried;
// finding the key then holding our own ID means the first try landed.
func (s *Slots) Claim(ctx context.Context, job string, slot time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	key := slotKey(job, slot)
	// The value names this claim, not only this replica: finding our own
	// replica's value from an earlier claim of the same slot (a run that
	// fired late and rounded to the next slot) must not run it again.
	mine := s.opts.ID + "/" + randomID()
	var last error
	for attempt := 0; ; attempt++ {
		kv, err := s.bucket(ctx)
		if err == nil {
			_, err = kv.Create(ctx, key, []byte(mine))
			if err == nil {
				return nil
			}
			if errors.Is(err, jetstream.ErrKeyExists) {
				e, gerr := kv.Get(ctx, key)
				if gerr == nil && string(e.Value()) == mine {
					return nil
				}
				if gerr == nil {
					return ErrSlotTaken
				}
				err = gerr
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("claim %s: %w", key, errors.Join(last, ctx.Err()))
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
}

// slotKey is "<job>.<slot in Unix ms>", the job's name reduced to the
// characters a key may hold.
func slotKey(job string, slot time.Time) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, job)
	return clean + "." + strconv.FormatInt(slot.UnixMilli(), 10)
}

func (s *Slots) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kv != nil {
		return s.kv, nil
	}
	kv, err := s.opts.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: s.opts.Bucket, Description: "Semko: which replica ran each scheduled job's slot (backend/elector)",
		History: 1, TTL: s.opts.Keep, Replicas: s.opts.Replicas, Storage: jetstream.FileStorage,
	})
	if err != nil {
		// Another replica made it with other settings: use it as it is.
		kv2, err2 := s.opts.JS.KeyValue(ctx, s.opts.Bucket)
		if err2 != nil {
			return nil, fmt.Errorf("slots bucket: %w", err)
		}
		kv = kv2
	}
	s.kv = kv
	return kv, nil
}
