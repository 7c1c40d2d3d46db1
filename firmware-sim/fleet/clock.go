package fleet

import "time"

// EdgeClock makes a unit's edge wall clock wrong, the way real ones are: a
// counter PC running fast (Offset > 0), a box without a clock battery that
// boots days behind (Offset < 0), and an NTP step: after StepAfter of
// running (0: never) the clock jumps to StepTo off the true time (0: right).
type EdgeClock struct {
	Offset    time.Duration
	StepAfter time.Duration
	StepTo    time.Duration
}

// Clock returns the wrong wall clock, started now.
func (c EdgeClock) Clock() func() time.Time {
	start := time.Now()
	return func() time.Time {
		now := time.Now()
		if c.StepAfter > 0 && now.Sub(start) >= c.StepAfter {
			return now.Add(c.StepTo)
		}
		return now.Add(c.Offset)
	}
}
