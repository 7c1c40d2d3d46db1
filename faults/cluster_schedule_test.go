package faults

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/semko/semko/backend/elector"
	"github.com/semko/semko/backend/intake/natsin"
	"github.com/semko/semko/backend/rollup"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/natslocal"
	"github.com/semko/semko/internal/testwait"
)

// rollupEvery is the roll-up's period in TestClusterScheduleAndPartition:
// short, so many periods pass around each fault, and longer than one
// roll-up run on a busy machine.
const rollupEvery = 3 * time.Second

// TestClusterScheduleAndPartition: a fleet votes through the three-node
// cluster into two backend replicas whose scheduled jobs run once per
// cluster (backend/elector). The replica leading the schedule is SIGKILLed
// and started again later; then one engine node (the leader of
// $MQTT_msgs) is partitioned off: stopped for longer than its election
// timeout, then brought back. Afterwards
//   - the roll-up ran exactly once in every period from its first run to
//     the end, counted from what it records (each run writes its `rollup`
//     points stamped with its own run time): no period without a run
//     across the replica's death, none with two;
//   - every vote pressed is in InfluxDB exactly once, device by device and
//     score by score.
func TestClusterScheduleAndPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: runs a NATS cluster, InfluxDB, two backends and a fleet")
	}
	issuer, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	issuerPub, _ := issuer.PublicKey()
	issuerSeed, _ := issuer.Seed()
	c := natslocal.StartForTest(t, natslocal.Options{Auth: &natslocal.Auth{
		User: clusterUser, Password: clusterSecret, CalloutIssuer: issuerPub}})
	db := influxlocal.StartForTest(t)
	model := fleet.Generate(fleet.Spec{Seed: 15, Orgs: 2, SitesPerOrg: 2, CountersPerSite: 3})

	extra := fmt.Sprintf("rollup:\n  every: %s\n", rollupEvery)
	replicas := []*backendProc{
		newClusterBackend(t, c, db, model, string(issuerSeed), extra),
		newClusterBackend(t, c, db, model, string(issuerSeed), extra),
	}
	for _, be := range replicas {
		be.start()
	}
	for _, be := range replicas {
		be.waitReady(60 * time.Second)
	}
	tally, runErr := runFleet(t, replicas[0], model, 300*time.Millisecond, 24, 120*time.Second)

	// The roll-up writes once there are votes to rank.
	testwait.Within(t, 90*time.Second, "the first roll-up run with votes", func() bool {
		return len(rollupRuns(t, db)) >= 2
	})

	// Fault 1: the replica leading the schedule dies.
	var leader, other *backendProc
	testwait.Within(t, 30*time.Second, "one replica leading the schedule", func() bool {
		leader, other = nil, nil
		for i, be := range replicas {
			if be.metric("semko_elector_leader") == 1 {
				leader, other = be, replicas[1-i]
			}
		}
		return leader != nil
	})
	leader.kill()
	died := time.Now()
	runsAtDeath := len(rollupRuns(t, db))
	testwait.Within(t, 30*time.Second, "the survivor taking the lease", func() bool {
		return other.metric("semko_elector_leader") == 1
	})
	t.Logf("schedule leader SIGKILLed; the survivor holds the lease %v later", time.Since(died).Round(100*time.Millisecond))
	testwait.Within(t, 60*time.Second, "four roll-up periods after the leader's death", func() bool {
		return len(rollupRuns(t, db)) >= runsAtDeath+4
	})
	leader.start()
	leader.waitReady(60 * time.Second)

	// Fault 2: one engine node partitioned off for longer than its
	// election timeout (a few seconds), then back.
	js := clusterJS(t, c)
	node := streamLeader(t, c, js)
	before := tally.Total().Votes
	if err := node.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	testwait.Within(t, 60*time.Second, "votes taken while a node is away", func() bool {
		return tally.Total().Votes >= before+10
	})
	for time.Since(stopped) < 12*time.Second { // the partition's length is the fault itself, not a wait for state
		time.Sleep(200 * time.Millisecond)
	}
	if err := node.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("node %s (leader of %s) away for %v after %d votes", node.Name, natsin.Stream,
		time.Since(stopped).Round(100*time.Millisecond), before)

	if err := <-runErr; err != nil {
		t.Fatalf("fleet run: %v", err)
	}
	testwait.Within(t, 60*time.Second, "the durable consumer acknowledging everything", func() bool {
		return durablePending(t, js) == 0
	})
	for _, be := range replicas {
		be.waitSpoolEmpty(90 * time.Second)
	}
	landed := checkExact(t, db, tally.Devices(), false)

	// Every period from the first roll-up run to now ran exactly once.
	periods, first := checkOncePerPeriod(t, db, rollupEvery)
	t.Logf("roll-up: %d periods of %v from %s, each run once; %d units pressed %s, landed %d valid votes exactly",
		periods, rollupEvery, first.UTC().Format("15:04:05"), len(model.Devices), describe(tally.Total()), landed)
}

// checkOncePerPeriod fails t unless the roll-up ran exactly once in every
// period of every from its first run to the last finished period, each run
// counted in the slot it claimed (elector.SlotAt). It returns how many
// periods it checked and the first.
func checkOncePerPeriod(t *testing.T, db *influxlocal.Server, every time.Duration) (int, time.Time) {
	t.Helper()
	end := time.Now().Add(-every) // the current period may not have run yet
	runs := rollupRuns(t, db)
	bySlot := map[int64][]time.Time{}
	for _, r := range runs {
		s := elector.SlotAt(r, every)
		bySlot[s.UnixMilli()] = append(bySlot[s.UnixMilli()], r)
	}
	first := elector.SlotAt(runs[0], every)
	periods := 0
	for s := first; s.Before(end); s = s.Add(every) {
		periods++
		if got := bySlot[s.UnixMilli()]; len(got) != 1 {
			t.Errorf("roll-up period %s ran %d times (%v), want once", s.UTC().Format("15:04:05"), len(got), got)
		}
	}
	return periods, first
}

// rollupRuns are the distinct times of the `rollup` points, sorted: one per
// roll-up run that wrote.
func rollupRuns(t *testing.T, db *influxlocal.Server) []time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	series, err := db.Query(ctx, `SELECT * FROM `+rollup.Measurement+` GROUP BY *`)
	if err != nil {
		if strings.Contains(err.Error(), "not found") {
			return nil
		}
		t.Fatal(err)
	}
	seen := map[time.Time]bool{}
	for _, s := range series {
		for row := range s.Values {
			at, err := s.Time(row)
			if err != nil {
				t.Fatal(err)
			}
			seen[at] = true
		}
	}
	out := make([]time.Time, 0, len(seen))
	for at := range seen {
		out = append(out, at)
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}
