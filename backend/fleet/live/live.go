// Package live is what the backend knows about each device right now,
// from the messages it sent since the backend started: ingest keeps it up
// to date, and diagnostics, the API and the fleet API read it. It is lost
// on restart and rebuilt from the next messages.
package live

import (
	"time"

	"github.com/semko/semko/fleet/registry"
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
	// Clock is what its messages say about the device's clock.
	Clock ClockState `json:"clock"`
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

// Command returns the unit's result of command id, if it arrived.
func (d DeviceState) Command(id string) (CommandOutcome, bool) {
	for _, c := range d.Commands {
		if c.ID == id {
			return c, true
		}
	}
	return CommandOutcome{}, false
}

// ClockState is what the backend knows about a device's clock.
type ClockState struct {
	// Held counts votes and activation records held apart since start for
	// a timestamp out of range; HeldLast is the arrival of the last one and
	// HeldOffsetMS its ts minus that arrival.
	Held         uint64    `json:"held"`
	HeldLast     time.Time `json:"held_last,omitzero"`
	HeldOffsetMS int64     `json:"held_offset_ms,omitempty"`
	// From the last heartbeat, the edge's own clock minus the backend's
	// (positive: the edge is fast), the one-way latency (half the round
	// trip it reports) taken off: OffsetMS. Synced says the edge stamps
	// its messages on the backend's time; StampErrorMS is how far those
	// stamps are from the backend's clock, measured the same way.
	Measured     bool  `json:"measured"`
	OffsetMS     int64 `json:"offset_ms"`
	Synced       bool  `json:"synced"`
	StampErrorMS int64 `json:"stamp_error_ms"`
}
