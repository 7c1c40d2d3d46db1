package fleet

import (
	"testing"
	"time"
)

func TestEdgeClock(t *testing.T) {
	fast := EdgeClock{Offset: 6 * time.Minute}.Clock()
	if d := time.Until(fast()); d < 6*time.Minute-time.Second || d > 6*time.Minute+time.Second {
		t.Errorf("fast clock %s ahead, want 6m", d)
	}
	// Stepped at once (StepAfter 1ns has passed by the first reading).
	stepped := EdgeClock{Offset: -72 * time.Hour, StepAfter: time.Nanosecond, StepTo: -time.Hour}.Clock()
	time.Sleep(time.Millisecond)
	if d := time.Until(stepped()); d > -time.Hour+time.Second || d < -time.Hour-time.Second {
		t.Errorf("stepped clock %s off, want -1h", d)
	}
}
