package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// Version is the payload version this package reads and writes. Every
// payload carries it as "v"; a message with another version is rejected
// rather than guessed at. Fields may be added within a version, so decoders
// ignore fields they do not know.
const Version = 1

// MaxPayload bounds one MQTT payload. The broker refuses larger packets.
const MaxPayload = 8 << 10

// MaxTokenLen bounds identifiers carried in payloads (service, operator,
// activation and command ids, channel): they become InfluxDB tags.
const MaxTokenLen = 64

// Errors shared by every Validate method. Match them with errors.Is.
var (
	ErrVersion  = errors.New("unsupported payload version")
	ErrInvalid  = errors.New("invalid payload")
	ErrTooLarge = errors.New("payload too large")
)

// Scale is the rating scale of a vote.
type Scale string

const (
	// ScaleCSAT5 is the five-emoticon keypad: 1 very unhappy .. 5 very happy.
	ScaleCSAT5 Scale = "csat5"
	// ScaleNPS11 is the 0..10 "would you recommend us" question.
	ScaleNPS11 Scale = "nps11"
)

// Range returns the lowest and highest score of the scale.
func (s Scale) Range() (lo, hi int, ok bool) {
	switch s {
	case ScaleCSAT5:
		return 1, 5, true
	case ScaleNPS11:
		return 0, 10, true
	}
	return 0, 0, false
}

// Satisfied reports whether score counts as satisfied: 4-5 on the keypad,
// a promoter (9-10) on NPS.
func (s Scale) Satisfied(score int) bool {
	if s == ScaleNPS11 {
		return score >= 9
	}
	return score >= 4
}

// Negative reports whether score counts as negative: 1-2 on the keypad, a
// detractor (0-6) on NPS.
func (s Scale) Negative(score int) bool {
	if s == ScaleNPS11 {
		return score <= 6
	}
	return score <= 2
}

// Reasons a press is forwarded as not valid. Such votes are stored with
// valid=false so abuse and misuse stay visible, but never count as ratings.
const (
	ReasonNoActivation = "no_activation" // pressed while no activation was open
	ReasonRepeat       = "repeat"        // a further press in the same activation
	ReasonFiltered     = "filtered"      // always-on mode: too soon after the previous vote
)

var reasons = map[string]bool{ReasonNoActivation: true, ReasonRepeat: true, ReasonFiltered: true}

// Channels a vote may come from.
const (
	ChannelKeypad = "keypad"
	ChannelWeb    = "web"
	// The NPS survey's channels (backend/survey): an answer to an e-mail
	// or SMS invitation, or to a counter's QR code.
	ChannelEmail = "email"
	ChannelQR    = "qr"
	ChannelSMS   = "sms"
)

// Vote is one button press, as the edge agent publishes it on
// semko/v1/devices/<id>/vote. Device and Seq identify it; Time, the moment
// of the press on the edge's clock, becomes the point's timestamp, so a
// redelivered vote overwrites itself in InfluxDB instead of counting twice.
type Vote struct {
	V      int       `json:"v"`
	Device string    `json:"device"`
	Seq    uint64    `json:"seq"` // the edge outbox's sequence number, > 0, increasing per device
	Time   time.Time `json:"ts"`
	Score  int       `json:"score"`
	Scale  Scale     `json:"scale"`
	// Channel is where the vote was cast: "keypad" for the counter's keypad.
	Channel string `json:"channel"`
	Valid   bool   `json:"valid"`
	Reason  string `json:"reason,omitempty"` // why not valid, empty when valid
	// The activation this press answers, empty for presses without one.
	Activation string `json:"activation,omitempty"`
	Service    string `json:"service,omitempty"`
	Operator   string `json:"operator,omitempty"`
	ServiceS   int    `json:"service_s,omitempty"`  // duration of the service, seconds
	LatencyMS  int64  `json:"latency_ms,omitempty"` // from activation to press
	// Clock says how Time was taken: empty when the edge stamped it on
	// the backend's time (its reference from the time beacon),
	// ClockLocal when it had no reference and Time is its own wall clock,
	// which may be wrong. See protocol/README.md section 4.
	Clock string `json:"clock,omitempty"`
}

// ClockLocal marks a Vote or ActivationRecord stamped on the edge's own
// clock, without a reference to the backend's time.
const ClockLocal = "local"

// Satisfied reports whether the vote's score counts as satisfied.
func (v Vote) Satisfied() bool { return v.Scale.Satisfied(v.Score) }

// Negative reports whether the vote's score counts as negative.
func (v Vote) Negative() bool { return v.Scale.Negative(v.Score) }

// Validate checks the vote on its own (not against a clock: see CheckTime).
func (v Vote) Validate() error {
	var c checker
	c.version(v.V)
	c.device(v.Device)
	c.that(v.Seq > 0, "seq must be > 0")
	c.that(!v.Time.IsZero(), "ts missing")
	lo, hi, ok := v.Scale.Range()
	c.that(ok, "unknown scale %q", v.Scale)
	c.that(!ok || (v.Score >= lo && v.Score <= hi), "score %d outside %d..%d", v.Score, lo, hi)
	c.token("channel", v.Channel, true)
	if v.Valid {
		c.that(v.Reason == "", "valid vote with reason %q", v.Reason)
	} else {
		c.that(reasons[v.Reason], "invalid vote needs a known reason, got %q", v.Reason)
	}
	c.token("activation", v.Activation, false)
	c.token("service", v.Service, false)
	c.token("operator", v.Operator, false)
	c.that(v.ServiceS >= 0, "service_s negative")
	c.that(v.LatencyMS >= 0, "latency_ms negative")
	c.that(v.Clock == "" || v.Clock == ClockLocal, "clock %q unknown", v.Clock)
	return c.err()
}

// Activation modes of a keypad.
const (
	ModeAfterService = "after_service" // votes count only inside an activation window
	ModeAlwaysOn     = "always_on"     // no integration: every press counts, repeats filtered
)

// Activate opens a vote window on a device: a service has just ended. The
// queue system sends it to the edge's local HTTP endpoint, or the backend
// publishes it on semko/v1/devices/<id>/activate. ID makes it idempotent: a
// second activation with the same id is ignored.
type Activate struct {
	V        int       `json:"v"`
	ID       string    `json:"id"`
	Time     time.Time `json:"ts,omitzero"` // end of service; zero (absent) means "now"
	Ticket   string    `json:"ticket,omitempty"`
	Service  string    `json:"service,omitempty"`
	Operator string    `json:"operator,omitempty"`
	ServiceS int       `json:"service_s,omitempty"`
	WindowS  int       `json:"window_s,omitempty"` // zero means the configured window
}

// Validate checks the activation request.
func (a Activate) Validate() error {
	var c checker
	c.version(a.V)
	c.token("id", a.ID, true)
	c.token("ticket", a.Ticket, false)
	c.token("service", a.Service, false)
	c.token("operator", a.Operator, false)
	c.that(a.ServiceS >= 0, "service_s negative")
	c.that(a.WindowS >= 0 && a.WindowS <= 3600, "window_s %d outside 0..3600", a.WindowS)
	return c.err()
}

// ActivationRecord reports an activation to the backend: once when the
// window opens (Closed false) and once when it closes (Closed true, Voted
// final). Both carry the activation's time, so the second overwrites the
// first in InfluxDB.
type ActivationRecord struct {
	V        int       `json:"v"`
	Device   string    `json:"device"`
	Seq      uint64    `json:"seq"`
	ID       string    `json:"id"`
	Time     time.Time `json:"ts"` // when the window opened
	Ticket   string    `json:"ticket,omitempty"`
	Service  string    `json:"service,omitempty"`
	Operator string    `json:"operator,omitempty"`
	ServiceS int       `json:"service_s,omitempty"`
	WindowS  int       `json:"window_s"`
	Voted    bool      `json:"voted"`
	Closed   bool      `json:"closed"`
	Clock    string    `json:"clock,omitempty"` // as Vote.Clock
}

// Validate checks the record on its own.
func (a ActivationRecord) Validate() error {
	var c checker
	c.version(a.V)
	c.device(a.Device)
	c.that(a.Seq > 0, "seq must be > 0")
	c.token("id", a.ID, true)
	c.that(!a.Time.IsZero(), "ts missing")
	c.that(a.Clock == "" || a.Clock == ClockLocal, "clock %q unknown", a.Clock)
	c.token("ticket", a.Ticket, false)
	c.token("service", a.Service, false)
	c.token("operator", a.Operator, false)
	c.that(a.ServiceS >= 0, "service_s negative")
	c.that(a.WindowS > 0 && a.WindowS <= 3600, "window_s %d outside 1..3600", a.WindowS)
	c.that(!a.Voted || a.Closed, "voted before the window closed")
	return c.err()
}

// Heartbeat is a device's periodic health report.
type Heartbeat struct {
	V             int       `json:"v"`
	Device        string    `json:"device"`
	Time          time.Time `json:"ts"`
	BootID        string    `json:"boot_id"`
	FW            string    `json:"fw"`
	UptimeS       int64     `json:"uptime_s"`
	RSSI          int       `json:"rssi,omitempty"` // link quality, dBm, 0 when wired
	TempC         float64   `json:"temp_c"`
	SupplyV       float64   `json:"supply_v,omitempty"`
	Outbox        int       `json:"outbox"`          // votes not yet confirmed by the broker
	ClockOffsetMS int64     `json:"clock_offset_ms"` // keypad clock minus edge clock
	Presses       [5]uint64 `json:"presses"`         // per key since boot, keys 1..5
	Errors        uint64    `json:"errors"`          // serial and self-test errors since boot
	PanelOK       bool      `json:"panel_ok"`
	BacklightOK   bool      `json:"backlight_ok"`
	Config        string    `json:"config,omitempty"` // version of the applied config
	// TimeOffsetMS is the correction the edge applies to its own clock to
	// get the backend's time (backend minus edge), when TimeSynced. The
	// edge's own clock at the report is therefore ts minus TimeOffsetMS.
	TimeOffsetMS int64 `json:"time_offset_ms,omitempty"`
	TimeSynced   bool  `json:"time_synced,omitempty"`
	// RTTMS is the round trip to the broker the edge measured last (a
	// publish to its PUBACK); half of it is the one-way latency.
	RTTMS int64 `json:"rtt_ms,omitempty"`
}

// Validate checks the heartbeat on its own.
func (h Heartbeat) Validate() error {
	var c checker
	c.version(h.V)
	c.device(h.Device)
	c.that(!h.Time.IsZero(), "ts missing")
	c.token("boot_id", h.BootID, true)
	c.token("fw", h.FW, true)
	c.that(h.UptimeS >= 0, "uptime_s negative")
	c.that(h.Outbox >= 0, "outbox negative")
	c.that(h.TempC > -60 && h.TempC < 150, "temp_c %v implausible", h.TempC)
	c.token("config", h.Config, false)
	c.that(h.RTTMS >= 0, "rtt_ms negative")
	return c.err()
}

// Status is a device's presence: its birth (Online true) on every connect,
// and its death (Online false), published by the broker as the will when the
// connection is lost, or by the device on a clean shutdown. BDSeq, as in
// Eclipse Sparkplug, increases with every connection: a death whose BDSeq is
// lower than the last birth's is late and must not mark the device offline.
type Status struct {
	V      int       `json:"v"`
	Device string    `json:"device"`
	Time   time.Time `json:"ts"`
	Online bool      `json:"online"`
	BootID string    `json:"boot_id"`
	FW     string    `json:"fw,omitempty"`
	BDSeq  uint64    `json:"bdseq"`
}

// Validate checks the status on its own.
func (s Status) Validate() error {
	var c checker
	c.version(s.V)
	c.device(s.Device)
	c.that(!s.Time.IsZero(), "ts missing")
	c.token("boot_id", s.BootID, true)
	c.token("fw", s.FW, false)
	return c.err()
}

// Panel is the instruction panel's content.
type Panel struct {
	Lang  string            `json:"lang"`  // the language shown, a key of Texts
	Texts map[string]string `json:"texts"` // language code -> text
}

// Backlight is the panel's backlight: a level and the hours it is on.
type Backlight struct {
	Level int    `json:"level"`          // 0..100 percent
	On    string `json:"on,omitempty"`   // "HH:MM", local time; empty means always
	Off   string `json:"off,omitempty"`  // "HH:MM"
	Days  string `json:"days,omitempty"` // e.g. "1-5" (Monday..Friday); empty means every day
	Zone  string `json:"zone,omitempty"` // IANA time zone of the site
}

// Config is a device's configuration, published retained on
// semko/v1/devices/<id>/config. The edge applies it and answers with
// ConfigApplied carrying the same Version.
type Config struct {
	V              int       `json:"v"`
	Version        string    `json:"version"`
	Panel          Panel     `json:"panel"`
	Backlight      Backlight `json:"backlight"`
	VoteWindowS    int       `json:"vote_window_s"`
	Mode           string    `json:"mode"`
	HeartbeatS     int       `json:"heartbeat_s"`
	RepeatFilterMS int       `json:"repeat_filter_ms"` // always-on: presses closer than this are filtered
}

// MaxPanelText bounds one panel text: the panel is small.
const MaxPanelText = 160

// maxPanelEscaped is the longest escaped panel text that still fits one
// PANEL frame ("PANEL <text>*HH" plus the newline within MaxFrame): 160
// four-byte runes (emoji) would not, and the keypad would drop the frame.
const maxPanelEscaped = MaxFrame - len("PANEL ") - len("*HH\n")

// Validate checks the configuration.
func (c Config) Validate() error {
	var k checker
	k.version(c.V)
	k.token("version", c.Version, true)
	k.that(c.Mode == ModeAfterService || c.Mode == ModeAlwaysOn, "mode %q not %s or %s", c.Mode, ModeAfterService, ModeAlwaysOn)
	k.that(c.VoteWindowS >= 1 && c.VoteWindowS <= 3600, "vote_window_s %d outside 1..3600", c.VoteWindowS)
	k.that(c.HeartbeatS >= 1 && c.HeartbeatS <= 86400, "heartbeat_s %d outside 1..86400", c.HeartbeatS)
	k.that(c.RepeatFilterMS >= 0 && c.RepeatFilterMS <= 3600_000, "repeat_filter_ms %d outside 0..3600000", c.RepeatFilterMS)
	k.that(c.Backlight.Level >= 0 && c.Backlight.Level <= 100, "backlight level %d outside 0..100", c.Backlight.Level)
	for _, hm := range []string{c.Backlight.On, c.Backlight.Off} {
		if hm != "" {
			_, err := time.Parse("15:04", hm)
			k.that(err == nil, "backlight time %q is not HH:MM", hm)
		}
	}
	for lang, text := range c.Panel.Texts {
		k.token("panel language", lang, true)
		k.that(utf8.ValidString(text) && utf8.RuneCountInString(text) <= MaxPanelText,
			"panel text for %q longer than %d characters or not UTF-8", lang, MaxPanelText)
		k.that(len(appendEscaped(nil, text)) <= maxPanelEscaped,
			"panel text for %q needs more than %d bytes on the serial line", lang, maxPanelEscaped)
	}
	if c.Panel.Lang != "" {
		_, ok := c.Panel.Texts[c.Panel.Lang]
		k.that(ok, "panel lang %q has no text", c.Panel.Lang)
	}
	return k.err()
}

// ConfigApplied confirms (or refuses) a Config on a device.
type ConfigApplied struct {
	V       int       `json:"v"`
	Device  string    `json:"device"`
	Time    time.Time `json:"ts"`
	Version string    `json:"version"`
	OK      bool      `json:"ok"`
	Error   string    `json:"error,omitempty"`
}

// Validate checks the confirmation.
func (c ConfigApplied) Validate() error {
	var k checker
	k.version(c.V)
	k.device(c.Device)
	k.that(!c.Time.IsZero(), "ts missing")
	k.token("version", c.Version, true)
	k.that(c.OK == (c.Error == ""), "ok and error disagree")
	return k.err()
}

// Commands a device understands.
const (
	CommandSelfTest = "selftest" // run the keypad's self-test
	CommandInfo     = "info"     // report firmware and serial
)

// Command asks a device to do something; the answer is a CommandResult with
// the same ID.
type Command struct {
	V    int               `json:"v"`
	ID   string            `json:"id"`
	Name string            `json:"name"`
	Time time.Time         `json:"ts"`
	Args map[string]string `json:"args,omitempty"`
}

// Validate checks the command.
func (c Command) Validate() error {
	var k checker
	k.version(c.V)
	k.token("id", c.ID, true)
	k.that(c.Name == CommandSelfTest || c.Name == CommandInfo, "unknown command %q", c.Name)
	k.that(!c.Time.IsZero(), "ts missing")
	return k.err()
}

// CommandResult answers a Command.
type CommandResult struct {
	V      int               `json:"v"`
	Device string            `json:"device"`
	ID     string            `json:"id"`
	Time   time.Time         `json:"ts"`
	OK     bool              `json:"ok"`
	Detail map[string]string `json:"detail,omitempty"`
	Error  string            `json:"error,omitempty"`
}

// Validate checks the result.
func (c CommandResult) Validate() error {
	var k checker
	k.version(c.V)
	k.device(c.Device)
	k.token("id", c.ID, true)
	k.that(!c.Time.IsZero(), "ts missing")
	return k.err()
}

// Validator is what every payload type implements.
type Validator interface{ Validate() error }

// Decode parses a payload strictly enough to trust it: size bounded, one
// JSON object, valid UTF-8, and Validate passing. Unknown fields are
// ignored (see Version).
func Decode[T Validator](data []byte) (T, error) {
	var v T
	if len(data) > MaxPayload {
		return v, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxPayload)
	}
	// encoding/json would silently replace invalid UTF-8 with U+FFFD.
	if !utf8.Valid(data) {
		return v, fmt.Errorf("%w: not UTF-8", ErrInvalid)
	}
	// Without this, "null" would decode to a zero value and fail only as a
	// version mismatch.
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return v, fmt.Errorf("%w: not a JSON object", ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&v); err != nil {
		return v, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	// Decoder.More reports false before a stray '}' or ']', so ask for the
	// next token instead: only the end of input is acceptable.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return v, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalid)
	}
	if err := v.Validate(); err != nil {
		return v, err
	}
	return v, nil
}

// TimeBeacon is the backend's time, published every few seconds on
// TimeTopic (QoS 0, not retained) for every edge to set its reference by.
type TimeBeacon struct {
	V    int       `json:"v"`
	Time time.Time `json:"ts"` // the backend's clock when it published
}

// Validate checks the beacon on its own.
func (b TimeBeacon) Validate() error {
	var c checker
	c.version(b.V)
	c.that(!b.Time.IsZero(), "ts missing")
	return c.err()
}

// Encode validates and marshals a payload.
func Encode(v Validator) ([]byte, error) {
	if err := v.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// ErrClock is returned by CheckTime.
var ErrClock = errors.New("timestamp outside the accepted range")

// CheckTime reports a timestamp too far in the future (a device clock gone
// wrong) or older than maxAge (beyond what an offline edge may hold). The
// Semko backend holds such votes apart rather than discarding them.
func CheckTime(ts, now time.Time, maxFuture, maxAge time.Duration) error {
	switch {
	case ts.After(now.Add(maxFuture)):
		return fmt.Errorf("%w: %s is more than %s ahead", ErrClock, ts.Format(time.RFC3339), maxFuture)
	case ts.Before(now.Add(-maxAge)):
		return fmt.Errorf("%w: %s is more than %s old", ErrClock, ts.Format(time.RFC3339), maxAge)
	}
	return nil
}

// checker collects the first validation failure, so Validate methods read
// as a list of rules.
type checker struct{ first error }

func (c *checker) that(ok bool, format string, args ...any) {
	if !ok && c.first == nil {
		c.first = fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
}

func (c *checker) version(v int) {
	if v != Version && c.first == nil {
		c.first = fmt.Errorf("%w: v=%d, want %d", ErrVersion, v, Version)
	}
}

func (c *checker) device(id string) {
	if err := ValidateDeviceID(id); err != nil && c.first == nil {
		c.first = fmt.Errorf("%w: device: %w", ErrInvalid, err)
	}
}

// token checks a short identifier: printable, no spaces or control
// characters, at most MaxTokenLen bytes.
func (c *checker) token(name, s string, required bool) {
	if s == "" {
		c.that(!required, "%s missing", name)
		return
	}
	ok := len(s) <= MaxTokenLen && utf8.ValidString(s)
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '"' || r == '\\' {
			ok = false
		}
	}
	c.that(ok, "%s %q is not a token of at most %d printable characters", name, s, MaxTokenLen)
}

func (c *checker) err() error { return c.first }

// Permanent reports whether err means the message itself is bad (invalid,
// wrong version, too large, clock out of range, a topic ParseTopic refuses):
// retrying it cannot help, so
// the receiver acknowledges and discards it, counting it. Any other error is
// transient: the receiver withholds its acknowledgement and the sender keeps
// the message and sends it again.
func Permanent(err error) bool {
	return errors.Is(err, ErrInvalid) || errors.Is(err, ErrVersion) ||
		errors.Is(err, ErrTooLarge) || errors.Is(err, ErrClock) ||
		errors.Is(err, ErrNotSemko) || errors.Is(err, ErrUnknownKind) || errors.Is(err, ErrDeviceID)
}
