package ingest

import (
	"time"

	"github.com/semko/semko/backend/fleet/live"
	"github.com/semko/semko/internal/textcut"
	"github.com/semko/semko/protocol"
)

// maxDetail bounds the detail entries kept of one command result.
const maxDetail = 16

// heartbeat applies a heartbeat received at received; i.mu held.
func (s *liveState) heartbeat(h protocol.Heartbeat, received time.Time) {
	if !received.Before(s.HeartbeatReceived) {
		// By arrival, not ts: a clock stepped back is news to measure.
		s.measureClock(h, received)
	}
	if h.Time.Before(s.LastHeartbeat) {
		return // an older heartbeat, redelivered late
	}
	if h.BootID == s.BootID && !s.HeartbeatReceived.IsZero() && received.After(s.HeartbeatReceived) {
		s.HeartbeatEvery = received.Sub(s.HeartbeatReceived)
	}
	s.LastHeartbeat, s.HeartbeatReceived = h.Time, received
	s.FW, s.BootID, s.Outbox = h.FW, h.BootID, h.Outbox
	if h.Config != "" {
		s.ConfigVersion = h.Config
	}
	s.Health = live.Health{
		UptimeS: h.UptimeS, RSSI: h.RSSI, TempC: h.TempC, SupplyV: h.SupplyV,
		ClockOffsetMS: h.ClockOffsetMS, Presses: h.Presses, Errors: h.Errors,
		PanelOK: h.PanelOK, BacklightOK: h.BacklightOK,
	}
}

// activation counts a closed activation record seen for the first time;
// i.mu held.
func (s *liveState) activation(a protocol.ActivationRecord, received time.Time) {
	if !a.Closed {
		return
	}
	s.Activity.Closed++
	if a.Voted {
		s.Activity.Voted++
		s.Activity.UnvotedStreak, s.Activity.UnvotedSince = 0, time.Time{}
		s.Activity.LastVoted = received
		return
	}
	if s.Activity.UnvotedStreak == 0 {
		s.Activity.UnvotedSince = received
	}
	s.Activity.UnvotedStreak++
}

// commandResult keeps a command result, dropping the oldest beyond
// live.MaxCommandResults; i.mu held.
func (s *liveState) commandResult(c protocol.CommandResult, received time.Time) {
	s.LastCommand, s.LastCommandOK = c.ID, c.OK
	out := live.CommandOutcome{ID: c.ID, OK: c.OK, Error: textcut.Trunc(c.Error, maxDeviceText), Received: received}
	for k, v := range c.Detail {
		if len(out.Detail) == maxDetail {
			break
		}
		if out.Detail == nil {
			out.Detail = make(map[string]string, min(len(c.Detail), maxDetail))
		}
		out.Detail[textcut.Trunc(k, protocol.MaxTokenLen)] = textcut.Trunc(v, maxDeviceText)
	}
	if len(s.Commands) == live.MaxCommandResults {
		// Copy rather than reslice: Devices hands out copies of the slice
		// header, and the backing array must not change under them.
		s.Commands = append([]live.CommandOutcome(nil), s.Commands[1:]...)
	}
	s.Commands = append(s.Commands, out)
}

// liveState is the mutable part kept per device.
type liveState struct {
	live.DeviceState
	birthSeen bool // BDSeq is from a birth seen since start
}

// maxDeviceText bounds strings devices report that end up in the state and
// the API (error texts): the state must stay small per device.
const maxDeviceText = 200

// Devices returns the live state of every device in the registry, ordered
// by id; devices not heard from yet are offline with zero times.
func (i *Ingest) Devices() []live.DeviceState {
	reg := i.opts.Registry()
	devs := reg.Devices()
	out := make([]live.DeviceState, 0, len(devs))
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, d := range devs {
		st := live.DeviceState{Device: d.ID, FW: d.FW}
		if s, ok := i.states[d.ID]; ok {
			st = s.DeviceState
			// Command results are replaced, never changed in place, so
			// sharing the outcomes is safe; the slice itself is copied.
			st.Commands = append([]live.CommandOutcome(nil), s.Commands...)
		}
		st.Placement, _ = reg.Placement(d.ID)
		out = append(out, st)
	}
	// Forget devices removed from the fleet, so the map stays bounded by it.
	if len(i.states) > len(devs) {
		for id, s := range i.states {
			if _, ok := reg.Device(id); !ok {
				if s.Online {
					i.online--
				}
				delete(i.states, id)
			}
		}
		i.m.online.Set(float64(i.online))
	}
	return out
}

// touch returns the device's state for updating, creating it; i.mu held.
func (i *Ingest) touch(device string, received time.Time) *liveState {
	s, ok := i.states[device]
	if !ok {
		s = &liveState{DeviceState: live.DeviceState{Device: device}}
		i.states[device] = s
	}
	if received.After(s.LastSeen) {
		s.LastSeen = received
	}
	return s
}

// setOnline changes presence and keeps the gauge in step; i.mu held.
func (i *Ingest) setOnline(s *liveState, online bool) {
	if s.Online == online {
		return
	}
	s.Online = online
	if online {
		i.online++
	} else {
		i.online--
	}
	i.m.online.Set(float64(i.online))
}

// heard records that a device spoke (any kind but status).
func (i *Ingest) heard(device string, received time.Time, update func(*liveState)) {
	i.mu.Lock()
	defer i.mu.Unlock()
	s := i.touch(device, received)
	i.setOnline(s, true)
	if update != nil {
		update(s)
	}
}

// presence applies a birth or death. It reports false for a late death: one
// whose bdseq is below the last birth's, sent for a connection that has
// since been replaced (a takeover, or a will delivered after the reconnect).
func (i *Ingest) presence(st protocol.Status, received time.Time) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	s := i.touch(st.Device, received)
	if !st.Online {
		if s.birthSeen && st.BDSeq < s.BDSeq {
			return false
		}
		i.setOnline(s, false)
		return true
	}
	i.setOnline(s, true)
	s.birthSeen = true
	s.BDSeq = st.BDSeq
	s.BootID = st.BootID
	if st.FW != "" {
		s.FW = st.FW
	}
	return true
}
