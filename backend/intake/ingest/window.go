package ingest

import (
	"sync"
	"time"
)

// minuteWindow counts events over the last 60 seconds in one-second
// buckets: fixed memory whatever the rate.
type minuteWindow struct {
	mu      sync.Mutex
	buckets [60]bucket
}

type bucket struct {
	sec         int64 // unix second the counts belong to
	activations int
	votes       int // valid votes
	satisfied   int // valid and satisfied
}

func (w *minuteWindow) at(now time.Time) *bucket {
	sec := now.Unix()
	b := &w.buckets[uint64(sec)%60]
	if b.sec != sec {
		*b = bucket{sec: sec}
	}
	return b
}

func (w *minuteWindow) addActivation(now time.Time) {
	w.mu.Lock()
	w.at(now).activations++
	w.mu.Unlock()
}

func (w *minuteWindow) addVote(now time.Time, satisfied bool) {
	w.mu.Lock()
	b := w.at(now)
	b.votes++
	if satisfied {
		b.satisfied++
	}
	w.mu.Unlock()
}

// sum returns the counts of the 60 seconds ending at now.
func (w *minuteWindow) sum(now time.Time) (total bucket) {
	sec := now.Unix()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range w.buckets {
		if b.sec > sec-60 && b.sec <= sec {
			total.activations += b.activations
			total.votes += b.votes
			total.satisfied += b.satisfied
		}
	}
	return total
}
