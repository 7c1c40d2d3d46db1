package ingest

import (
	"time"

	"github.com/semko/semko/backend/registry"
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
}

// liveState is the mutable part kept per device.
type liveState struct {
	DeviceState
	birthSeen bool // BDSeq is from a birth seen since start
}

// maxDeviceText bounds strings devices report that end up in the state and
// the API (error texts): the state must stay small per device.
const maxDeviceText = 200

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary so the JSON stays valid UTF-8.
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

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
