package live

import (
	"testing"
	"time"
)

func TestServingAt(t *testing.T) {
	s := NewServing()
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	if _, _, ok := s.At("kp-1", t0); ok {
		t.Fatal("an unknown device has no operator")
	}
	s.Record("kp-1", "op-a", "svc-1", t0)
	s.Record("kp-1", "op-b", "svc-2", t0.Add(10*time.Minute))
	for _, c := range []struct {
		at       time.Duration
		op, svc  string
		wantSeen bool
	}{
		{-time.Minute, "", "", false},
		{0, "op-a", "svc-1", true},
		{9 * time.Minute, "op-a", "svc-1", true},
		{10 * time.Minute, "op-b", "svc-2", true},
		{time.Hour, "op-b", "svc-2", true},
	} {
		op, svc, ok := s.At("kp-1", t0.Add(c.at))
		if op != c.op || svc != c.svc || ok != c.wantSeen {
			t.Errorf("At(+%v) = %q %q %v, want %q %q %v", c.at, op, svc, ok, c.op, c.svc, c.wantSeen)
		}
	}
	// Bounded: only the last servingDepth activations are kept.
	for i := range 3 * servingDepth {
		s.Record("kp-2", "op", "svc", t0.Add(time.Duration(i)*time.Minute))
	}
	if n := len(s.m["kp-2"]); n != servingDepth {
		t.Errorf("%d activations kept, want %d", n, servingDepth)
	}
	if _, _, ok := s.At("kp-2", t0); ok {
		t.Error("an activation older than the kept ones was found")
	}
}
