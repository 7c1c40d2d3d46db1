package ingest

import (
	"sync"
	"time"
)

// logLimiter lets at most max lines through per second, so a flood of bad
// messages cannot fill the disk with logs. Lines it holds back are counted
// and reported with the next line that passes.
type logLimiter struct {
	mu         sync.Mutex
	max        int
	sec        int64
	n          int
	suppressed int
}

// allow reports whether a line may be written now and, if so, how many were
// held back since the last one written.
func (l *logLimiter) allow(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sec := now.Unix(); sec != l.sec {
		l.sec, l.n = sec, 0
	}
	if l.n >= l.max {
		l.suppressed++
		return false, 0
	}
	l.n++
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}
