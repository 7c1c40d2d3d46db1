package loglimit

import (
	"testing"
	"time"
)

func TestLimiterCountsWhatItHoldsBack(t *testing.T) {
	l := New(2)
	t0 := time.Unix(1000, 0)
	for n, want := range []bool{true, true, false, false} {
		if ok, _ := l.Allow("m", t0); ok != want {
			t.Fatalf("call %d: allow = %v", n, ok)
		}
	}
	ok, suppressed := l.Allow("m", t0.Add(time.Second))
	if !ok || suppressed != 2 {
		t.Fatalf("next second: %v, suppressed %d", ok, suppressed)
	}
}

func TestLimiterKeepsMessagesApart(t *testing.T) {
	l := New(3)
	t0 := time.Unix(1000, 0)
	var passed int
	for range 10 {
		if ok, _ := l.Allow("flood", t0); ok {
			passed++
		}
	}
	if passed != 3 {
		t.Errorf("%d of 10 lines passed a limit of 3 per second", passed)
	}
	if ok, _ := l.Allow("other", t0); !ok {
		t.Error("one message's flood silenced another")
	}
}
