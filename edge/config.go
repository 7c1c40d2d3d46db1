package edge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/semko/semko/protocol"
)

// Config configures an Agent. Only Device, Broker and DataDir are required;
// every other zero field gets the default documented beside it, so a main
// can fill it straight from flags.
type Config struct {
	Device   string      // device id: also the MQTT client id and username
	Secret   string      // MQTT password
	Broker   string      // "tcp://127.0.0.1:1883" or "ssl://host:8883"; a clustered front door's nodes comma-separated (see brokerOrder)
	TLS      *tls.Config // optional, for ssl:// brokers
	DataDir  string      // outbox and state (last config, bdseq); required
	HTTPAddr string      // local activation endpoint, e.g. "127.0.0.1:8181"; "" disables it

	// Defaults is used until the backend's retained config arrives (and
	// none was persisted before). Zero fields take DefaultConfig's values.
	Defaults protocol.Config

	ReconnectMin time.Duration // first reconnect delay, full jitter; default 1s
	ReconnectMax time.Duration // cap of the exponential backoff; default 2m

	PublishTimeout time.Duration // wait for a PUBACK before resending; default 10s
	MaxInFlight    int           // outbox entries published and not yet confirmed; default 16
	CommandTimeout time.Duration // wait for the keypad's TEST or INFO answer; default 5s
	OutboxMaxBytes int64         // disk bound of the outbox; default 64 MiB

	// LinkRSSI reports the uplink's signal in dBm for heartbeats (a
	// Wi-Fi or cellular controller); nil or 0 means wired.
	LinkRSSI func() int

	// Now is the edge's wall clock (windows, the backlight schedule, and
	// timestamps until the backend's time is known); default time.Now.
	Now func() time.Time
	// Mono is the monotonic clock: time since an arbitrary start of this
	// process, never stepped. Default: measured from New.
	Mono   func() time.Duration
	Logger *slog.Logger // default: discard
}

// ErrConfig is returned by New for an unusable Config.
var ErrConfig = errors.New("invalid edge config")

// DefaultConfig is the device configuration used before the backend sends
// one: after-service mode, a 20 s window, a heartbeat a minute.
func DefaultConfig() protocol.Config {
	return protocol.Config{
		V:              protocol.Version,
		Version:        "default",
		Backlight:      protocol.Backlight{Level: 80},
		VoteWindowS:    20,
		Mode:           protocol.ModeAfterService,
		HeartbeatS:     60,
		RepeatFilterMS: 3000,
	}
}

func (c *Config) fill() error {
	if err := protocol.ValidateDeviceID(c.Device); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if len(brokerList(c.Broker)) == 0 {
		return fmt.Errorf("%w: broker missing", ErrConfig)
	}
	if c.DataDir == "" {
		return fmt.Errorf("%w: data dir missing", ErrConfig)
	}
	def := DefaultConfig()
	d := &c.Defaults
	d.V = protocol.Version
	if d.Version == "" {
		d.Version = def.Version
	}
	if d.Mode == "" {
		d.Mode = def.Mode
	}
	if d.VoteWindowS == 0 {
		d.VoteWindowS = def.VoteWindowS
	}
	if d.HeartbeatS == 0 {
		d.HeartbeatS = def.HeartbeatS
	}
	if d.RepeatFilterMS == 0 {
		d.RepeatFilterMS = def.RepeatFilterMS
	}
	if d.Backlight.Level == 0 {
		d.Backlight.Level = def.Backlight.Level
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%w: defaults: %w", ErrConfig, err)
	}
	setDefault(&c.ReconnectMin, time.Second)
	setDefault(&c.ReconnectMax, 2*time.Minute)
	c.ReconnectMax = max(c.ReconnectMax, c.ReconnectMin)
	setDefault(&c.PublishTimeout, 10*time.Second)
	setDefault(&c.CommandTimeout, 5*time.Second)
	setDefault(&c.MaxInFlight, 16)
	setDefault(&c.OutboxMaxBytes, 64<<20)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Mono == nil {
		start := time.Now()
		c.Mono = func() time.Duration { return time.Since(start) }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
