package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/semko/semko/edge/outbox"
	"github.com/semko/semko/protocol"
)

// Time you can trust. The edge's wall clock may be anything (a counter PC
// running fast, a box without a clock battery booting in 1970), so the
// agent stamps votes and activation records on the backend's time: each
// TimeBeacon gives a reference, the backend's time at a reading of the
// monotonic clock, and the stamp of a moment is that time plus the
// monotonic time elapsed since. A wall clock that steps (NTP) changes
// nothing. Stamps are still taken once, at the press, so a redelivered
// vote carries the same ts.
//
// Before the first reference of a boot, a press is stored unstamped: its
// outbox entry carries the monotonic reading (and the boot it belongs to)
// and is not published. The first reference of the boot is written to disk
// before anything is published, so every unstamped entry of that boot is
// stamped from it, identically on every (re)delivery and after a crash.
// An entry from a boot that ended before any reference cannot be stamped
// (monotonic readings do not survive a restart): it is published with its
// wall-clock time at the press and clock "local", for the backend to judge.

// maxTimeRefs bounds the boots whose first reference is remembered.
const maxTimeRefs = 16

const timeRefFile = "timeref.json"

// timeRef is the backend's time at a monotonic reading of one boot.
type timeRef struct {
	Boot    string    `json:"boot_id"`
	MonoNS  int64     `json:"mono_ns"`
	Backend time.Time `json:"ts"`
}

func (r timeRef) at(mono time.Duration) time.Time {
	return r.Backend.Add(mono - time.Duration(r.MonoNS))
}

// edgeClock keeps the current reference and the first one of each recent
// boot (durably).
type edgeClock struct {
	mu     sync.Mutex
	latest timeRef // zero until the first beacon of this boot
	synced bool
	rtt    time.Duration // the least of the recent round trips, 0 unknown
	rtts   [rttSamples]time.Duration
	rttN   int
	firsts []timeRef // oldest first; the current boot's last once synced
}

// rttSamples is how many publish round trips the estimate looks back on.
// The least of them is the network's: the others include the backend's
// fsync before its PUBACK and queueing behind other publishes.
const rttSamples = 16

func loadTimeRefs(dir string) ([]timeRef, error) {
	data, err := os.ReadFile(filepath.Join(dir, timeRefFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read time references: %w", err)
	}
	var refs []timeRef
	if err := json.Unmarshal(data, &refs); err != nil {
		return nil, fmt.Errorf("parse time references: %w", err)
	}
	return refs, nil
}

func saveTimeRefs(dir string, refs []timeRef) error {
	data, _ := json.Marshal(refs)
	return writeFileAtomic(filepath.Join(dir, timeRefFile), data)
}

// now returns the best time the agent has: the backend's, when it has a
// reference (synced), else its own wall clock. mono is the monotonic
// reading it was taken at.
func (a *Agent) now() (t time.Time, synced bool, mono time.Duration) {
	mono = a.cfg.Mono()
	a.clk.mu.Lock()
	defer a.clk.mu.Unlock()
	if a.clk.synced {
		return a.clk.latest.at(mono), true, mono
	}
	return a.cfg.Now(), false, mono
}

// timeNow is now without the details, for messages that are not stamped
// once (heartbeats, status, answers).
func (a *Agent) timeNow() time.Time {
	t, _, _ := a.now()
	return t
}

// beacon is a TimeBeacon with the monotonic reading at its arrival.
type beacon struct {
	payload []byte
	mono    time.Duration
}

// setReference takes a beacon as the new reference. The backend's clock
// read the beacon's ts about half a round trip before it arrived. The
// first reference of a boot is made durable before it is used, because
// unstamped entries are stamped from it.
func (a *Agent) setReference(b beacon) {
	tb, err := protocol.Decode[protocol.TimeBeacon](b.payload)
	if err != nil {
		a.log.Warn("bad time beacon", "err", err)
		return
	}
	a.clk.mu.Lock()
	defer a.clk.mu.Unlock()
	ref := timeRef{Boot: a.bootID, MonoNS: int64(b.mono), Backend: tb.Time.Add(a.clk.rtt / 2)}
	if !a.clk.synced {
		refs := append(a.clk.firsts, ref)
		if len(refs) > maxTimeRefs {
			refs = refs[len(refs)-maxTimeRefs:]
		}
		if err := saveTimeRefs(a.cfg.DataDir, refs); err != nil {
			a.log.Error("time reference not stored; waiting for the next beacon", "err", err)
			return
		}
		a.clk.firsts = refs
		a.clk.synced = true
		off := ref.at(b.mono).Sub(a.cfg.Now())
		a.log.Info("time reference set", "offset", off.Round(time.Millisecond), "rtt", a.clk.rtt)
		kick(a.outboxKick) // unstamped entries may go now
	}
	a.clk.latest = ref
}

// firstRef returns the durable first reference of boot.
func (a *Agent) firstRef(boot string) (timeRef, bool) {
	a.clk.mu.Lock()
	defer a.clk.mu.Unlock()
	for _, r := range a.clk.firsts {
		if r.Boot == boot {
			return r, true
		}
	}
	return timeRef{}, false
}

func (a *Agent) addRTT(d time.Duration) {
	a.clk.mu.Lock()
	defer a.clk.mu.Unlock()
	c := &a.clk
	c.rtts[c.rttN%rttSamples] = d
	c.rttN++
	c.rtt = d
	for _, s := range c.rtts[:min(c.rttN, rttSamples)] {
		c.rtt = min(c.rtt, s)
	}
}

// unstampedMark is what an unstamped outbox entry carries besides its
// payload; the marker fields are removed before it is published.
type unstampedMark struct {
	Boot   string `json:"edge_boot"`
	MonoNS int64  `json:"edge_mono_ns"`
}

var markKey = []byte(`"edge_mono_ns"`)

// markUnstamped appends the marker fields to an encoded JSON object.
func markUnstamped(data []byte, boot string, mono time.Duration) []byte {
	data = bytes.TrimRight(data, " \n")
	out := make([]byte, 0, len(data)+80)
	out = append(out, data[:len(data)-1]...)
	out = append(out, `,"edge_boot":`...)
	out = strconv.AppendQuote(out, boot)
	out = append(out, `,"edge_mono_ns":`...)
	out = strconv.AppendInt(out, int64(mono), 10)
	return append(out, '}')
}

// publishable returns what to publish for an outbox entry, or ok false
// while it must wait for this boot's first reference.
func (a *Agent) publishable(e outbox.Entry) (data []byte, ok bool, err error) {
	if !bytes.Contains(e.Data, markKey) {
		return e.Data, true, nil
	}
	var m unstampedMark
	if err := json.Unmarshal(e.Data, &m); err != nil {
		return nil, false, fmt.Errorf("unstamped entry %d: %w", e.Seq, err)
	}
	ref, found := a.firstRef(m.Boot)
	if !found && m.Boot == a.bootID {
		return nil, false, nil // the reference has not arrived yet
	}
	switch e.Kind {
	case protocol.KindVote:
		v, err := protocol.Decode[protocol.Vote](e.Data)
		if err != nil {
			return nil, false, fmt.Errorf("unstamped vote %d: %w", e.Seq, err)
		}
		if found {
			v.Time = ref.at(time.Duration(m.MonoNS))
		} else {
			v.Clock = protocol.ClockLocal
		}
		data, err = protocol.Encode(v)
		return data, err == nil, err
	case protocol.KindActivation:
		r, err := protocol.Decode[protocol.ActivationRecord](e.Data)
		if err != nil {
			return nil, false, fmt.Errorf("unstamped activation record %d: %w", e.Seq, err)
		}
		if found {
			r.Time = ref.at(time.Duration(m.MonoNS))
		} else {
			r.Clock = protocol.ClockLocal
		}
		data, err = protocol.Encode(r)
		return data, err == nil, err
	}
	return e.Data, true, nil
}
