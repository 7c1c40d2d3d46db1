package diagnostics

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-co-op/gocron/v2"
)

// Check names. Each is a scheduled job of that name, a key of
// Config.Schedule, and an argument of Diagnostics.CheckNow.
const (
	CheckOffline         = "offline"          // no heartbeat for longer than the unit's timeout
	CheckStuckKey        = "stuck_key"        // a key pressing itself
	CheckHardware        = "hardware"         // panel or backlight fault reported in heartbeats
	CheckSilent          = "silent_unit"      // activations close without votes for a long stretch
	CheckClockDrift      = "clock_drift"      // keypad clock off by more than the bound
	CheckEdgeClock       = "edge_clock"       // edge clock off the backend's, or votes held for their time
	CheckOutbox          = "outbox_backlog"   // the edge's outbox grows
	CheckFirmware        = "firmware"         // firmware older than the fleet's target
	CheckSelfTest        = "selftest"         // sends the remote self-test to every online unit
	CheckSelfTestResults = "selftest_results" // judges the answers (or their absence)
)

// Checks lists every check in the order Run-all uses.
var Checks = []string{
	CheckOffline, CheckStuckKey, CheckHardware, CheckSilent, CheckClockDrift, CheckEdgeClock,
	CheckOutbox, CheckFirmware, CheckSelfTest, CheckSelfTestResults,
}

// ErrConfig is returned for a configuration that cannot work.
var ErrConfig = errors.New("invalid diagnostics config")

// Config is the `diagnostics:` section of the backend's configuration.
// Zero values take the defaults of DefaultConfig.
type Config struct {
	// Disabled turns every check off.
	Disabled bool `yaml:"disabled"`
	// Schedule maps a check name to when it runs: a Go duration ("30s",
	// every so often) or a five-field cron spec ("0 3 * * *", local time).
	// "off" disables one check. Checks not named keep their default.
	Schedule map[string]string `yaml:"schedule"`

	Offline    OfflineConfig    `yaml:"offline"`
	StuckKey   StuckKeyConfig   `yaml:"stuck_key"`
	Silent     SilentConfig     `yaml:"silent_unit"`
	ClockDrift ClockDriftConfig `yaml:"clock_drift"`
	EdgeClock  EdgeClockConfig  `yaml:"edge_clock"`
	Outbox     OutboxConfig     `yaml:"outbox_backlog"`
	Firmware   FirmwareConfig   `yaml:"firmware"`
	SelfTest   SelfTestConfig   `yaml:"selftest"`
}

// OfflineConfig sets how long a unit may stay silent. The timeout of a unit
// is, first found: PerDevice[id], PerModel[model], Timeout, and otherwise
// HeartbeatMultiple times its heartbeat interval: the longer of the one
// remote configuration gives it and the one its heartbeats really arrive
// at; DefaultHeartbeat when neither is known.
type OfflineConfig struct {
	Timeout           time.Duration            `yaml:"timeout"`
	HeartbeatMultiple float64                  `yaml:"heartbeat_multiple"`
	DefaultHeartbeat  time.Duration            `yaml:"default_heartbeat"`
	PerModel          map[string]time.Duration `yaml:"per_model"`
	PerDevice         map[string]time.Duration `yaml:"per_device"`
}

// StuckKeyConfig: over each Window, a key is stuck when its counter rose by
// at least MinPresses more than the activations the unit closed (for units
// that get activations), or when it took at least MaxShare of at least
// MinPresses presses.
type StuckKeyConfig struct {
	Window     time.Duration `yaml:"window"`
	MinPresses int           `yaml:"min_presses"`
	MaxShare   float64       `yaml:"max_share"`
}

// SilentConfig: a unit is silent when at least MinActivations windows in a
// row closed without a vote and the first of them is at least Stretch old.
type SilentConfig struct {
	MinActivations int           `yaml:"min_activations"`
	Stretch        time.Duration `yaml:"stretch"`
}

// ClockDriftConfig bounds the keypad clock's offset from the edge's.
type ClockDriftConfig struct {
	Max time.Duration `yaml:"max"`
}

// EdgeClockConfig: an edge's clock is wrong when its last heartbeat says
// it is more than Max off the backend's (arrival minus ts, minus half the
// round trip the edge measured), or when a vote or activation record of it
// was held apart for its timestamp within the last HeldFor.
type EdgeClockConfig struct {
	Max     time.Duration `yaml:"max"`
	HeldFor time.Duration `yaml:"held_for"`
}

// OutboxConfig: over each Window, the backlog is growing when the outbox
// holds at least Min votes and no fewer than at the window's start.
type OutboxConfig struct {
	Window time.Duration `yaml:"window"`
	Min    int           `yaml:"min"`
}

// FirmwareConfig names the fleet's target firmware; empty disables the
// check.
type FirmwareConfig struct {
	Target string `yaml:"target"`
}

// SelfTestConfig: a unit that has not answered the self-test within
// Deadline is a finding.
type SelfTestConfig struct {
	Deadline time.Duration `yaml:"deadline"`
}

// DefaultConfig is the configuration zero values fall back to.
func DefaultConfig() Config {
	return Config{
		Schedule: map[string]string{
			CheckOffline:         "30s",
			CheckStuckKey:        "1m",
			CheckHardware:        "1m",
			CheckSilent:          "5m",
			CheckClockDrift:      "5m",
			CheckEdgeClock:       "1m",
			CheckOutbox:          "1m",
			CheckFirmware:        "1h",
			CheckSelfTest:        "0 3 * * *",
			CheckSelfTestResults: "1m",
		},
		Offline:    OfflineConfig{HeartbeatMultiple: 3, DefaultHeartbeat: time.Minute},
		StuckKey:   StuckKeyConfig{Window: 30 * time.Minute, MinPresses: 20, MaxShare: 0.9},
		Silent:     SilentConfig{MinActivations: 10, Stretch: 2 * time.Hour},
		ClockDrift: ClockDriftConfig{Max: time.Minute},
		EdgeClock:  EdgeClockConfig{Max: time.Minute, HeldFor: time.Hour},
		Outbox:     OutboxConfig{Window: 10 * time.Minute, Min: 10},
		SelfTest:   SelfTestConfig{Deadline: 5 * time.Minute},
	}
}

// withDefaults fills zero values from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	sched := make(map[string]string, len(d.Schedule))
	for k, v := range d.Schedule {
		sched[k] = v
	}
	for k, v := range c.Schedule {
		sched[k] = v
	}
	c.Schedule = sched
	or(&c.Offline.HeartbeatMultiple, d.Offline.HeartbeatMultiple)
	or(&c.Offline.DefaultHeartbeat, d.Offline.DefaultHeartbeat)
	or(&c.StuckKey.Window, d.StuckKey.Window)
	or(&c.StuckKey.MinPresses, d.StuckKey.MinPresses)
	or(&c.StuckKey.MaxShare, d.StuckKey.MaxShare)
	or(&c.Silent.MinActivations, d.Silent.MinActivations)
	or(&c.Silent.Stretch, d.Silent.Stretch)
	or(&c.ClockDrift.Max, d.ClockDrift.Max)
	or(&c.EdgeClock.Max, d.EdgeClock.Max)
	or(&c.EdgeClock.HeldFor, d.EdgeClock.HeldFor)
	or(&c.Outbox.Window, d.Outbox.Window)
	or(&c.Outbox.Min, d.Outbox.Min)
	or(&c.SelfTest.Deadline, d.SelfTest.Deadline)
	return c
}

func or[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Validate reports every setting that cannot work.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	for name, spec := range c.Schedule {
		if !known(name) {
			errs = append(errs, fmt.Errorf("%w: schedule: unknown check %q", ErrConfig, name))
			continue
		}
		if _, err := parseSchedule(spec); err != nil {
			errs = append(errs, fmt.Errorf("%w: schedule %s: %w", ErrConfig, name, err))
		}
	}
	neg := func(name string, d time.Duration) {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%w: %s is negative", ErrConfig, name))
		}
	}
	neg("offline.timeout", c.Offline.Timeout)
	neg("offline.default_heartbeat", c.Offline.DefaultHeartbeat)
	for id, d := range c.Offline.PerDevice {
		neg("offline.per_device."+id, d)
	}
	for m, d := range c.Offline.PerModel {
		neg("offline.per_model."+m, d)
	}
	neg("stuck_key.window", c.StuckKey.Window)
	neg("silent_unit.stretch", c.Silent.Stretch)
	neg("clock_drift.max", c.ClockDrift.Max)
	neg("edge_clock.max", c.EdgeClock.Max)
	neg("edge_clock.held_for", c.EdgeClock.HeldFor)
	neg("outbox_backlog.window", c.Outbox.Window)
	neg("selftest.deadline", c.SelfTest.Deadline)
	if c.Offline.HeartbeatMultiple < 1 {
		errs = append(errs, fmt.Errorf("%w: offline.heartbeat_multiple %v below 1", ErrConfig, c.Offline.HeartbeatMultiple))
	}
	if c.StuckKey.MaxShare <= 0 || c.StuckKey.MaxShare > 1 {
		errs = append(errs, fmt.Errorf("%w: stuck_key.max_share %v not in (0, 1]", ErrConfig, c.StuckKey.MaxShare))
	}
	if c.StuckKey.MinPresses < 1 || c.Silent.MinActivations < 1 || c.Outbox.Min < 1 {
		errs = append(errs, fmt.Errorf("%w: minimum counts must be at least 1", ErrConfig))
	}
	return errors.Join(errs...)
}

func known(check string) bool {
	for _, c := range Checks {
		if c == check {
			return true
		}
	}
	return false
}

// scheduleOff disables one check in Config.Schedule.
const scheduleOff = "off"

// parseSchedule turns "30s" into a duration job and anything else into a
// cron job; nil (no error) means "off".
func parseSchedule(spec string) (gocron.JobDefinition, error) {
	spec = strings.TrimSpace(spec)
	switch {
	case spec == scheduleOff:
		return nil, nil
	case spec == "":
		return nil, errors.New("empty schedule")
	}
	if d, err := time.ParseDuration(spec); err == nil {
		if d <= 0 {
			return nil, fmt.Errorf("interval %s not positive", spec)
		}
		return gocron.DurationJob(d), nil
	}
	if len(strings.Fields(spec)) != 5 {
		return nil, fmt.Errorf("%q is neither a duration nor a five-field cron spec", spec)
	}
	return gocron.CronJob(spec, false), nil
}
