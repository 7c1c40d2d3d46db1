package broker

import (
	"sync"
	"time"
)

// rateLimiter is a token bucket per client id: each publish takes a token,
// tokens refill at rate per second up to burst. A client over its limit is
// first slowed down: its publish waits for its token (up to maxRateWait) on
// that client's own read goroutine, which TCP turns into backpressure on
// that client alone. Only a client further over is refused. The others are
// not touched, since the only shared state is a map guarded for a few
// arithmetic operations.
//
// Waiting rather than refusing matters for an edge draining a backlog: a
// refused QoS 1 publish gets no PUBACK, and the edge resends it only after
// its publish timeout, so refusing would stall a drain for seconds at a
// time while waiting keeps it at the allowed rate.
//
// Buckets are keyed by client id, which for a device is its device id (the
// only clients limited). A bucket outlives its connection: forgetting it on
// disconnect gave every reconnect a fresh burst, so a device reconnecting
// in a loop published far above its rate. One is dropped only once it has
// refilled, when it is no different from a new one (see idle); the map holds
// at most one entry per device of the fleet.
type rateLimiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// newRateLimiter returns nil (no limit) when rate is not positive.
func newRateLimiter(rate float64, burst int, now func() time.Time) *rateLimiter {
	if rate <= 0 {
		return nil
	}
	if burst < 1 {
		burst = 1
	}
	return &rateLimiter{rate: rate, burst: float64(burst), now: now, buckets: make(map[string]*bucket)}
}

// maxRateWait is the longest a publish waits for its token before it is
// refused.
const maxRateWait = time.Second

// allow takes a token for id and reports whether there was one.
func (l *rateLimiter) allow(id string) bool {
	wait, ok := l.reserve(id, 0)
	return ok && wait == 0
}

// reserve takes a token for id, borrowing against the refill if the bucket
// is empty, and says how long the caller must wait before its token is
// really there. It refuses (ok false, nothing taken) when that wait would
// exceed maxWait.
func (l *rateLimiter) reserve(id string, maxWait time.Duration) (wait time.Duration, ok bool) {
	if l == nil {
		return 0, true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.buckets[id]
	if !found {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[id] = b
	}
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	wait = time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	if wait > maxWait {
		return 0, false
	}
	b.tokens--
	return wait, true
}

// idle is called when id disconnects: its bucket is dropped if it is full
// by now (a new one would be the same), kept otherwise, so that the client
// finds its debt when it comes back.
func (l *rateLimiter) idle(id string) {
	if l == nil {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[id]
	if ok && b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
		delete(l.buckets, id)
	}
}

func (l *rateLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// pause waits d on the calling client's goroutine, or less if the broker
// closes; it reports whether the full wait passed.
func (b *Broker) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.ctx.Done():
		return false
	}
}
