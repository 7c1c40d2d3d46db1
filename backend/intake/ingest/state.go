package ingest

import (
	"time"

	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/internal/textcut"
	"github.com/semko/semko/protocol"
)

// DeviceState is what the backend knows about one device right now, from
// the messages it sent since the backend started. It is lost on restart and
// rebuilt from the next messages: every device that speaks is connected, and
// its next heartbeat fills in the rest.
type DeviceState struct {
	Device    string             `json:"device"`
	Placement registry.Placement `json:"placement"`
	// Online follows presence (status messages, with Sparkplug's bdseq rule)
	// and turns true on any other message: a device that speaks is connected.
	Online        bool      `json:"online"`
	LastSeen      time.Time `json:"last_seen,omitzero"`      // last accepted message, any kind
	LastHeartbeat time.Time `json:"last_heartbeat,omitzero"` // its ts, the device's clock
	FW            string    `json:"fw,omitempty"`
	BootID        string    `json:"boot_id,omitempty"`
	BDSeq         uint64    `json:"bdseq"`  // of the last birth
	Outbox        int       `json:"outbox"` // votes the edge holds unconfirmed, from the last heartbeat
	// ConfigVersion is the last configuration the device applied;
	// ConfigError is set when it refused the latest one.
	ConfigVersion string `json:"config_version,omitempty"`
	ConfigError   string `json:"config_error,omitempty"`
	// LastCommand is the id of the last command result, LastCommandOK its outcome.
	LastCommand   string `json:"last_command,omitempty"`
	LastCommandOK bool   `json:"last_command_ok,omitempty"`
	// HeartbeatReceived is when the last heartbeat arrived, on the
	// backend's clock: offline detection measures from it, not from the
	// device's own timestamp, which a wrong clock could push anywhere.
	HeartbeatReceived time.Time `json:"heartbeat_received,omitzero"`
	// HeartbeatEvery is the gap between the last two heartbeats of one
	// boot as received: the interval the unit really runs, whatever it was
	// configured to.
	HeartbeatEvery time.Duration `json:"heartbeat_every_ns,omitempty"`
	// Health is the last heartbeat's report.
	Health Health `json:"health"`
	// Activity counts activation records since the backend started.
	Activity Activity `json:"activity"`
	// Commands are the latest command results, newest last, at most
	// MaxCommandResults.
	Commands []CommandOutcome `json:"commands,omitempty"`
}

// Health is what a unit says about itself in its heartbeat.
type Health struct {
	UptimeS       int64     `json:"uptime_s"`
	RSSI          int       `json:"rssi,omitempty"`
	TempC         float64   `json:"temp_c"`
	SupplyV       float64   `json:"supply_v,omitempty"`
	ClockOffsetMS int64     `json:"clock_offset_ms"`
	Presses       [5]uint64 `json:"presses"` // per key since the edge started
	Errors        uint64    `json:"errors"`
	PanelOK       bool      `json:"panel_ok"`
	BacklightOK   bool      `json:"backlight_ok"`
}

// Activity is what the activation records of a unit add up to. A unit
// whose activations keep closing unvoted has keys that do not reach the
// edge, even when every heartbeat looks healthy.
type Activity struct {
	Closed uint64 `json:"closed"` // activation windows closed
	Voted  uint64 `json:"voted"`  // of them, with a valid vote
	// UnvotedStreak counts the windows closed without a vote since the
	// last voted one; UnvotedSince is when the first of them arrived.
	UnvotedStreak int       `json:"unvoted_streak"`
	UnvotedSince  time.Time `json:"unvoted_since,omitzero"`
	LastVoted     time.Time `json:"last_voted,omitzero"` // arrival of the last voted window
}

// CommandOutcome is one command result as received.
type CommandOutcome struct {
	ID       string            `json:"id"`
	OK       bool              `json:"ok"`
	Error    string            `json:"error,omitempty"`
	Detail   map[string]string `json:"detail,omitempty"`
	Received time.Time         `json:"received"`
}

// MaxCommandResults bounds the command results kept per unit.
const MaxCommandResults = 4

// maxDetail bounds the detail entries kept of one command result.
const maxDetail = 16

// heartbeat applies a heartbeat received at received; i.mu held.
func (s *liveState) heartbeat(h protocol.Heartbeat, received time.Time) {
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
	s.Health = Health{
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
// MaxCommandResults; i.mu held.
func (s *liveState) commandResult(c protocol.CommandResult, received time.Time) {
	s.LastCommand, s.LastCommandOK = c.ID, c.OK
	out := CommandOutcome{ID: c.ID, OK: c.OK, Error: textcut.Trunc(c.Error, maxDeviceText), Received: received}
	for k, v := range c.Detail {
		if len(out.Detail) == maxDetail {
			break
		}
		if out.Detail == nil {
			out.Detail = make(map[string]string, min(len(c.Detail), maxDetail))
		}
		out.Detail[textcut.Trunc(k, protocol.MaxTokenLen)] = textcut.Trunc(v, maxDeviceText)
	}
	if len(s.Commands) == MaxCommandResults {
		// Copy rather than reslice: Devices hands out copies of the slice
		// header, and the backing array must not change under them.
		s.Commands = append([]CommandOutcome(nil), s.Commands[1:]...)
	}
	s.Commands = append(s.Commands, out)
}

// Command returns the unit's result of command id, if it arrived.
func (d DeviceState) Command(id string) (CommandOutcome, bool) {
	for _, c := range d.Commands {
		if c.ID == id {
			return c, true
		}
	}
	return CommandOutcome{}, false
}

// liveState is the mutable part kept per device.
type liveState struct {
	DeviceState
	birthSeen bool // BDSeq is from a birth seen since start
}

// maxDeviceText bounds strings devices report that end up in the state and
// the API (error texts): the state must stay small per device.
const maxDeviceText = 200

// Devices returns the live state of every device in the registry, ordered
// by id; devices not heard from yet are offline with zero times.
func (i *Ingest) Devices() []DeviceState {
	reg := i.opts.Registry()
	devs := reg.Devices()
	out := make([]DeviceState, 0, len(devs))
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, d := range devs {
		st := DeviceState{Device: d.ID, FW: d.FW}
		if s, ok := i.states[d.ID]; ok {
			st = s.DeviceState
			// Command results are replaced, never changed in place, so
			// sharing the outcomes is safe; the slice itself is copied.
			st.Commands = append([]CommandOutcome(nil), s.Commands...)
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
		s = &liveState{DeviceState: DeviceState{Device: device}}
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
