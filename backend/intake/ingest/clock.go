package ingest

import (
	"bytes"
	"time"

	"github.com/semko/semko/protocol"
)

// A message's timestamp outside [now-MaxAge, now+MaxFuture] means the
// sender's clock is wrong, not that the message is. So nothing is
// discarded for its clock any more:
//
//   - a vote or an activation record out of range is held apart: spooled,
//     with its own ts (so a redelivery still overwrites itself), into the
//     measurement "vote_held" or "activation_held" instead of "vote" or
//     "activation", where no rating query counts it; it is counted per
//     device (live.DeviceState.Clock) and in semko_ingest_clock_held_total, and
//     the edge_clock diagnostic reports the device the same day;
//   - a heartbeat or birth out of range is stored at its arrival time; the
//     live state keeps the device's ts, which the edge_clock diagnostic
//     compares with the arrival.
//
// HeldSuffix ends the measurement of a held-apart point.
const HeldSuffix = "_held"

// heldLine moves a rendered point to its held-apart measurement: the line
// starts with the measurement name, then a comma and the tags.
func heldLine(line []byte, measurement string) []byte {
	rest, ok := bytes.CutPrefix(line, []byte(measurement+","))
	if !ok {
		return line // cannot happen for lines rendered by influx
	}
	out := make([]byte, 0, len(line)+len(HeldSuffix))
	out = append(out, measurement...)
	out = append(out, HeldSuffix...)
	out = append(out, ',')
	return append(out, rest...)
}

// inRange reports whether ts is within the accepted range of now.
func (i *Ingest) inRange(ts, now time.Time) bool {
	return protocol.CheckTime(ts, now, i.opts.MaxFuture, i.opts.MaxAge) == nil
}

// held counts a held-apart vote or record; i.mu not held.
func (i *Ingest) held(device string, kind protocol.Kind, ts, received time.Time, added bool) {
	if added {
		i.m.clockHeld.WithLabelValues(string(kind)).Inc()
	}
	i.heard(device, received, func(s *liveState) {
		if added {
			s.Clock.Held++
		}
		s.Clock.HeldLast = received
		s.Clock.HeldOffsetMS = ts.Sub(received).Milliseconds()
	})
	if ok, suppressed := i.limit.Allow("ingest: timestamp out of range, held apart", time.Now()); ok {
		i.log.Warn("ingest: timestamp out of range, held apart", "device", device, "kind", kind,
			"offset", ts.Sub(received).Round(time.Second), "suppressed_before", suppressed)
	}
}

// measureClock derives the device's clock offset from a heartbeat that
// arrived at received; i.mu held.
func (s *liveState) measureClock(h protocol.Heartbeat, received time.Time) {
	sent := received.Add(-time.Duration(h.RTTMS) * time.Millisecond / 2) // backend time when it was made
	own := h.Time
	if h.TimeSynced {
		own = h.Time.Add(-time.Duration(h.TimeOffsetMS) * time.Millisecond)
	}
	s.Clock.Measured = true
	s.Clock.OffsetMS = own.Sub(sent).Milliseconds()
	s.Clock.Synced = h.TimeSynced
	s.Clock.StampErrorMS = h.Time.Sub(sent).Milliseconds()
}
