package testwait

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestWithinReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	Within(t, time.Minute, "three polls", func() bool { return n.Add(1) >= 3 })
	if got := n.Load(); got != 3 {
		t.Fatalf("polled %d times, want 3", got)
	}
}

func TestPollStopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if Poll(ctx, func() bool { return false }) {
		t.Fatal("Poll reported a condition that never held")
	}
	if !Poll(t.Context(), func() bool { return true }) {
		t.Fatal("Poll missed a condition that held")
	}
}
