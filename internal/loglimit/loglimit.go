// Package loglimit bounds how many lines of one message a process logs per
// second, so that a flood (bad messages, a connection storm, a hostile
// client) cannot fill the disk or bury every other warning. The broker,
// ingest and the HTTP API's connection limit log through it.
package loglimit

import (
	"sync"
	"time"
)

// Limiter lets at most perSecond lines of each message through per
// calendar second. Lines it holds back are counted, and the count is
// reported with the next line of that message that passes. Messages are
// meant to be constant strings, so the map stays small. Safe for
// concurrent use.
type Limiter struct {
	perSecond int
	mu        sync.Mutex
	windows   map[string]*window
}

type window struct {
	second     int64
	n          int
	suppressed int
}

// New returns a Limiter allowing perSecond lines of each message a second.
func New(perSecond int) *Limiter {
	return &Limiter{perSecond: perSecond, windows: make(map[string]*window)}
}

// Allow reports whether a line of msg may be logged at now, and if so how
// many lines of it were held back since the last one that was.
func (l *Limiter) Allow(msg string, now time.Time) (ok bool, suppressed int) {
	sec := now.Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.windows[msg]
	if w == nil {
		w = &window{}
		l.windows[msg] = w
	}
	if w.second != sec {
		w.second, w.n = sec, 0
	}
	if w.n >= l.perSecond {
		w.suppressed++
		return false, 0
	}
	w.n++
	suppressed, w.suppressed = w.suppressed, 0
	return true, suppressed
}
