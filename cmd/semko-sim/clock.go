package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/semko/semko/firmware-sim/fleet"
)

// edgeClocks collects -edge-clock flags: DEVICE=OFFSET gives that unit's
// edge a wall clock OFFSET off the true time (6m: fast, -72h: slow);
// DEVICE=OFFSET,AFTER,TO steps it to TO off after AFTER of running (an NTP
// step; TO 0 is the right time).
type edgeClocks map[string]fleet.EdgeClock

func (e edgeClocks) String() string { return fmt.Sprint(map[string]fleet.EdgeClock(e)) }

func (e edgeClocks) Set(s string) error {
	id, spec, ok := strings.Cut(s, "=")
	if !ok || id == "" {
		return fmt.Errorf("%q: want DEVICE=OFFSET[,AFTER,TO]", s)
	}
	parts := strings.Split(spec, ",")
	if len(parts) != 1 && len(parts) != 3 {
		return fmt.Errorf("%q: want DEVICE=OFFSET[,AFTER,TO]", s)
	}
	var d [3]time.Duration
	for i, p := range parts {
		v, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil {
			return fmt.Errorf("%q: %w", s, err)
		}
		d[i] = v
	}
	if d[1] < 0 {
		return fmt.Errorf("%q: AFTER is negative", s)
	}
	e[id] = fleet.EdgeClock{Offset: d[0], StepAfter: d[1], StepTo: d[2]}
	return nil
}

func (e edgeClocks) of(dev fleet.Device) fleet.EdgeClock { return e[dev.ID] }
