package main

import (
	"testing"
	"time"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/firmware-sim/keypad"
)

func TestWithFaults(t *testing.T) {
	model := fleet.Generate(fleet.Spec{Seed: 1, Orgs: 3, SitesPerOrg: 2, CountersPerSite: 4})
	cfg := backend.DefaultConfig()
	opts := withFaults(&cfg, model)
	if err := cfg.Diagnostics.Validate(); err != nil {
		t.Fatalf("dev diagnostics config: %v", err)
	}
	faulty := 0
	for _, d := range model.Devices {
		if faultyOpts(opts(d)) {
			faulty++
		}
	}
	if faulty != 6 {
		t.Fatalf("%d faulty units, want 6", faulty)
	}
	small := fleet.Generate(fleet.Spec{Seed: 1, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 2})
	if opts := withFaults(&cfg, small); faultyOpts(opts(small.Devices[0])) {
		t.Fatal("a fleet too small for faults got one")
	}
}

func TestWrongEdgeClock(t *testing.T) {
	model := fleet.Generate(fleet.Spec{Seed: 1, Orgs: 3, SitesPerOrg: 2, CountersPerSite: 4})
	clocks := wrongEdgeClock(model)
	wrong := 0
	for _, d := range model.Devices {
		if c := clocks(d); c != (fleet.EdgeClock{}) {
			wrong++
			if c.Offset <= time.Minute {
				t.Errorf("%s: offset %s is within the edge_clock bound", d.ID, c.Offset)
			}
		}
	}
	if wrong != 1 {
		t.Fatalf("%d edges with a wrong clock, want 1", wrong)
	}
}

func faultyOpts(o keypad.Options) bool {
	return o.StuckKey != 0 || o.DeadBacklight || o.DeadPanel || o.SilentKeys || o.ClockOffset != 0 || o.FW != ""
}
