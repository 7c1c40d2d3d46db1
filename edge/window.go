package edge

import (
	"time"

	"github.com/semko/semko/protocol"
)

// voteWindow is one activation: open from opened until deadline, or until
// its vote.
type voteWindow struct {
	act      protocol.Activate
	opened   time.Time // on the wall clock, as deadline
	length   time.Duration
	deadline time.Time
	votedAt  time.Time

	// stamp is the ActivationRecord's ts, set by the agent. unstamped: it
	// is the wall clock's, to be replaced from the boot's first time
	// reference using mono (see clock.go).
	stamp     time.Time
	unstamped bool
	mono      time.Duration
}

// pendingRecord is an activation record with what stamping it needs.
type pendingRecord struct {
	rec       protocol.ActivationRecord
	unstamped bool
	mono      time.Duration
}

func (w *voteWindow) record(device string, voted, closed bool) protocol.ActivationRecord {
	ts := w.stamp
	if ts.IsZero() {
		ts = w.opened
	}
	return protocol.ActivationRecord{
		V: protocol.Version, Device: device, ID: w.act.ID, Time: ts,
		Ticket: w.act.Ticket, Service: w.act.Service, Operator: w.act.Operator, ServiceS: w.act.ServiceS,
		WindowS: int(w.length / time.Second), Voted: voted, Closed: closed,
	}
}

func (w *voteWindow) pending(device string, voted, closed bool) pendingRecord {
	return pendingRecord{rec: w.record(device, voted, closed), unstamped: w.unstamped, mono: w.mono}
}

// recentIDs remembers the last activation ids, so a repeated activation
// (a retry by the queue system, a redelivery by the broker) is ignored.
type recentIDs struct {
	ring []string
	set  map[string]bool
	next int
}

func newRecentIDs(n int) *recentIDs {
	return &recentIDs{ring: make([]string, n), set: make(map[string]bool, n)}
}

func (r *recentIDs) has(id string) bool { return r.set[id] }

func (r *recentIDs) add(id string) {
	if r.set[id] {
		return
	}
	delete(r.set, r.ring[r.next])
	r.ring[r.next] = id
	r.set[id] = true
	r.next = (r.next + 1) % len(r.ring)
}

// recentKeys remembers the kseqs of presses already stored since the
// keypad's last BOOT: the keypad resends a KEY until it hears TAKEN, and a
// resend must not become a second vote.
type recentKeys struct {
	ring []uint32
	set  map[uint32]bool
	next int
}

func newRecentKeys(n int) *recentKeys {
	return &recentKeys{ring: make([]uint32, n), set: make(map[uint32]bool, n)}
}

func (r *recentKeys) has(k uint32) bool { return r.set[k] }

func (r *recentKeys) add(k uint32) {
	if r.set[k] {
		return
	}
	if old := r.ring[r.next]; r.set[old] {
		delete(r.set, old)
	}
	r.ring[r.next] = k
	r.set[k] = true
	r.next = (r.next + 1) % len(r.ring)
}

func (r *recentKeys) reset() { clear(r.set) }

// voteRules decides what a press means. It holds no I/O: judge proposes,
// and commit applies the proposal once the vote is durable, so a press the
// outbox refused leaves no trace and its resend is judged afresh.
type voteRules struct {
	mode         string
	window       time.Duration
	repeatFilter time.Duration

	open      *voteWindow // the window waiting for a vote
	lastVoted *voteWindow // the last window that got its vote
	lastValid time.Time   // always-on: the previous valid press
	lastStamp time.Time   // last vote timestamp handed out
}

func (r *voteRules) configure(c protocol.Config) {
	r.mode = c.Mode
	r.window = time.Duration(c.VoteWindowS) * time.Second
	r.repeatFilter = time.Duration(c.RepeatFilterMS) * time.Millisecond
}

// pressVerdict is judge's proposal.
type pressVerdict struct {
	vote   protocol.Vote
	closes *voteWindow // the window this vote closes, if any
	now    time.Time
	// unstamped: vote.Time is the wall clock's and must not order the
	// stamps that follow (see clock.go).
	unstamped bool
}

// stamp returns a vote timestamp at millisecond precision, strictly after
// the previous one: two votes of one device must not share a point in
// InfluxDB.
func stamp(now, last time.Time) time.Time {
	t := now.Truncate(time.Millisecond)
	if !t.After(last) {
		t = last.Add(time.Millisecond)
	}
	return t
}

func (r *voteRules) judge(now time.Time, key int) pressVerdict {
	v := protocol.Vote{
		V: protocol.Version, Time: stamp(now, r.lastStamp), Score: key,
		Scale: protocol.ScaleCSAT5, Channel: protocol.ChannelKeypad,
	}
	p := pressVerdict{now: now}
	w := r.open
	if w != nil && !now.Before(w.deadline) {
		w = nil // expired, the housekeeper has not closed it yet
	}
	switch {
	case r.mode == protocol.ModeAlwaysOn:
		v.Valid = r.lastValid.IsZero() || now.Sub(r.lastValid) >= r.repeatFilter
		if !v.Valid {
			v.Reason = protocol.ReasonFiltered
		} else if w != nil {
			p.closes = w
		}
	case w != nil:
		v.Valid = true
		p.closes = w
	case r.lastVoted != nil && now.Before(r.lastVoted.votedAt.Add(r.lastVoted.length)):
		v.Reason = protocol.ReasonRepeat
		w = r.lastVoted
	default:
		v.Reason = protocol.ReasonNoActivation
	}
	if w != nil && (v.Valid || v.Reason == protocol.ReasonRepeat) {
		v.Activation, v.Service, v.Operator, v.ServiceS = w.act.ID, w.act.Service, w.act.Operator, w.act.ServiceS
		v.LatencyMS = max(0, now.Sub(w.opened).Milliseconds())
	}
	p.vote = v
	return p
}

func (r *voteRules) commit(p pressVerdict) {
	if !p.unstamped {
		r.lastStamp = p.vote.Time
	}
	if p.vote.Valid {
		r.lastValid = p.now
	}
	if p.closes != nil {
		p.closes.votedAt = p.now
		r.lastVoted = p.closes
		if r.open == p.closes {
			r.open = nil
		}
	}
}

// newWindow builds the window an activation opens; the caller installs it
// in open once its record is durable.
func (r *voteRules) newWindow(act protocol.Activate, now time.Time) *voteWindow {
	length := r.window
	if act.WindowS > 0 {
		length = time.Duration(act.WindowS) * time.Second
	}
	return &voteWindow{act: act, opened: now, length: length, deadline: now.Add(length)}
}
