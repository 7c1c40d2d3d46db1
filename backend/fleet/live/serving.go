package live

import (
	"sync"
	"time"
)

// servingDepth is how many activations are kept per device: enough to
// find the one in force at any moment of a QR scan's short life, however
// busy the counter.
const servingDepth = 16

// Serving remembers, per device, the last activations sent to it (when,
// by which operator, for which service), so an answer that arrives later
// through another channel (a QR survey scanned at the counter) can be
// tied to the operator and service of the moment it was given. Bounded:
// servingDepth entries per device, and only fleet devices are activated.
// Lost on restart, like the rest of the live state. Safe for concurrent
// use.
type Serving struct {
	mu sync.Mutex
	m  map[string][]served
}

type served struct {
	at                time.Time
	operator, service string
}

// NewServing returns an empty record.
func NewServing() *Serving { return &Serving{m: map[string][]served{}} }

// Record notes an activation of device at time at.
func (s *Serving) Record(device, operator, service string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := append(s.m[device], served{at: at, operator: operator, service: service})
	if len(list) > servingDepth {
		list = append(list[:0:0], list[len(list)-servingDepth:]...)
	}
	s.m[device] = list
}

// At returns the operator and service of the latest activation of device
// at or before t; ok is false when none is known.
func (s *Serving) At(device string, t time.Time) (operator, service string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.m[device]
	for i := len(list) - 1; i >= 0; i-- {
		if !list[i].at.After(t) {
			return list[i].operator, list[i].service, true
		}
	}
	return "", "", false
}
