// Package testwait is the tests' one way to wait for a condition that
// another goroutine or process makes true: poll it, and fail the test with
// what was awaited if it does not hold in time. The limit only bounds a
// failing test; a passing one returns as soon as the condition holds, so
// no test asserts on time.
package testwait

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Limit is how long For waits: far above what any condition takes on a
// loaded machine.
const Limit = 30 * time.Second

// every is how often a condition is polled.
const every = 10 * time.Millisecond

// For polls cond until it holds, failing t after Limit.
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, Limit, what, cond)
}

// Within polls cond until it holds, failing t after limit with what and
// the text of each explain; it returns how long the wait took.
func Within(t testing.TB, limit time.Duration, what string, cond func() bool, explain ...func() string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			var more strings.Builder
			for _, e := range explain {
				more.WriteString("\n" + e())
			}
			t.Fatalf("timed out after %v waiting for %s%s", limit, what, more.String())
		}
		time.Sleep(every)
	}
	return time.Since(start)
}

// Poll polls cond until it holds (true) or ctx ends (false).
func Poll(ctx context.Context, cond func() bool) bool {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}
