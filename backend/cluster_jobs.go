package backend

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/semko/semko/backend/elector"
)

// newScheduleElection makes the scheduled jobs run once per cluster: a
// lease (the elector) says which replica runs them while it lives, and
// every run first claims its slot in the cluster's key-value store, so a
// slot runs on exactly one replica even while the lease moves
// (backend/elector.Slots).
func (s *clusterSource) newScheduleElection(a *App, cc ClusterMQTTConfig, log *slog.Logger) error {
	js, err := jetstream.New(s.nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	replicas := cc.Replicas
	if replicas <= 0 {
		replicas = 3
	}
	if s.elector, err = elector.New(elector.Options{
		JS: js, Lease: cc.ScheduleLease, Replicas: replicas, Logger: log, Registerer: a.metrics,
	}); err != nil {
		return fmt.Errorf("schedule elector: %w", err)
	}
	if s.slots, err = elector.NewSlots(elector.SlotOptions{
		JS: js, ID: s.elector.ID(), Replicas: replicas, Leader: s.elector.Leader, Registerer: a.metrics,
	}); err != nil {
		return fmt.Errorf("schedule slots: %w", err)
	}
	return nil
}

// clusterJobs is what a scheduled job that must run once per cluster gets
// as its Cluster option: nil with the embedded broker or a single
// external one (the process runs every period itself).
//
// Jobs over the people's stores take sharedStoreJobs instead; the alert
// manager's dispatch and deadline jobs, sharedStoreLeader (they tick every
// second: a lease check, not a slot claim per period).
func (a *App) clusterJobs() func(period time.Duration) gocron.Locker {
	if cs, ok := a.source.(*clusterSource); ok && cs.slots != nil {
		return cs.slots.Every
	}
	return nil
}

// sharedStoreJobs is clusterJobs for a job over the people's stores
// (report subscriptions): once per cluster only when those stores are
// shared in PostgreSQL. On each replica's own SQLite files every replica
// must run it, or the others' subscriptions would never be served.
func (a *App) sharedStoreJobs() func(period time.Duration) gocron.Locker {
	if a.postgresDSN() == "" {
		return nil
	}
	return a.clusterJobs()
}

// sharedStoreLeader is, for a replica of a cluster whose people's stores
// are in PostgreSQL, whether it leads the schedule now: the survey and
// incident checks (plain tickers, not gocron jobs) and the alert manager's
// dispatch and deadline checks run on the leader only (each alert change
// is a transaction on the stored alert, so an escalation is never done
// twice even while the lease moves). nil elsewhere: every process checks
// its own store.
func (a *App) sharedStoreLeader() func() bool {
	cs, ok := a.source.(*clusterSource)
	if !ok || cs.elector == nil || a.postgresDSN() == "" {
		return nil
	}
	return cs.elector.Leader
}
