package main

import (
	"time"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/firmware-sim/keypad"
)

// withFaults gives a few units of the dev fleet a fault, so the
// diagnostics have something to find in `make run`, and shortens the
// checks' windows so their findings show within minutes rather than
// hours. It returns the fleet's NewKeypadOptions. The faulty units are the
// last ones of the fleet; with fewer than six units there are none.
func withFaults(cfg *backend.Config, model *fleet.Model) func(fleet.Device) keypad.Options {
	cfg.Diagnostics.StuckKey.Window = 5 * time.Minute
	cfg.Diagnostics.Silent.Stretch = 10 * time.Minute
	cfg.Diagnostics.Firmware.Target = "1.4.2"
	if cfg.Diagnostics.Schedule == nil {
		cfg.Diagnostics.Schedule = map[string]string{}
	}
	cfg.Diagnostics.Schedule["selftest"] = "10m" // nightly in production
	cfg.Diagnostics.Schedule["firmware"] = "2m"  // hourly in production
	cfg.Lifecycle.RunAtStart = true              // the generated fleet has keypads due

	faults := map[string]keypad.Options{}
	if n := len(model.Devices); n >= 6 {
		last := func(i int) string { return model.Devices[n-i].ID }
		faults[last(1)] = keypad.Options{StuckKey: 5, StuckEvery: 5 * time.Second}
		faults[last(2)] = keypad.Options{DeadBacklight: true}
		faults[last(3)] = keypad.Options{ClockOffset: 90 * time.Second, DriftPerHour: 30 * time.Second}
		faults[last(4)] = keypad.Options{DeadPanel: true}
		faults[last(5)] = keypad.Options{SilentKeys: true}
		faults[last(6)] = keypad.Options{FW: "1.3.9"}
	}
	return func(d fleet.Device) keypad.Options { return faults[d.ID] }
}

// wrongEdgeClock gives one edge of the dev fleet, the seventh from the end,
// a wall clock 6 minutes fast, as a counter PC's may be: its votes still
// land at the right time (it stamps them on the backend's time beacon) and
// the diagnostics raise edge_clock for it. With fewer than seven units
// there is none.
func wrongEdgeClock(model *fleet.Model) func(fleet.Device) fleet.EdgeClock {
	var id string
	if n := len(model.Devices); n >= 7 {
		id = model.Devices[n-7].ID
	}
	return func(d fleet.Device) fleet.EdgeClock {
		if d.ID == id {
			return fleet.EdgeClock{Offset: 6 * time.Minute}
		}
		return fleet.EdgeClock{}
	}
}
