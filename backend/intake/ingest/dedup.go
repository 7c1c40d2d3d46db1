package ingest

import (
	"container/list"
	"sync"

	"github.com/semko/semko/protocol"
)

// seenKey identifies one upstream message that carries an outbox sequence
// number (votes and activation records). The sequence number alone does not:
// a reinstalled edge agent (a new disk, the same device id) starts its
// outbox at 1 again, and its new votes would be taken for old ones and
// dropped after their PUBACK. The timestamp is the point's identity in
// InfluxDB, so a key that includes it can only skip what would have
// overwritten itself anyway.
type seenKey struct {
	device string
	kind   protocol.Kind
	seq    uint64
	ts     int64 // Unix nanoseconds of the message's ts
}

// seenSet remembers the most recent keys that reached the spool, up to a
// fixed number, evicting the least recently used. It only saves work and
// spool space: forgetting a key is harmless, because a resent point carries
// the same timestamp and overwrites itself in InfluxDB.
type seenSet struct {
	mu    sync.Mutex
	max   int
	order *list.List // front = most recent; values are seenKey
	index map[seenKey]*list.Element
}

func newSeenSet(max int) *seenSet {
	return &seenSet{max: max, order: list.New(), index: make(map[seenKey]*list.Element, max)}
}

// has reports whether k was added, refreshing it if so.
func (s *seenSet) has(k seenKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.index[k]
	if ok {
		s.order.MoveToFront(e)
	}
	return ok
}

// add remembers k, evicting the oldest key when full.
func (s *seenSet) add(k seenKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.index[k]; ok {
		s.order.MoveToFront(e)
		return
	}
	if s.order.Len() >= s.max {
		oldest := s.order.Back()
		s.order.Remove(oldest)
		delete(s.index, oldest.Value.(seenKey))
	}
	s.index[k] = s.order.PushFront(k)
}

func (s *seenSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.order.Len()
}
