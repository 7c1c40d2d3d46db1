// Package ingest is the backend's intake for upstream device messages. The
// broker calls Accept for each one before it acknowledges it to the device:
// Accept checks the message, tags it with the device's placement, renders it
// as InfluxDB line protocol and appends it to the durable spool, returning
// only once it is on disk. Its error tells the broker what to do:
// protocol.Permanent(err) means bad input (acknowledge, discard, count);
// anything else is transient (withhold the acknowledgement, the device
// resends).
//
// Per kind: votes and activation records become points and are
// de-duplicated on (device, kind, seq, ts); one whose timestamp is out of the
// accepted range is held apart in its own measurement, never discarded
// (clock.go); heartbeats become points and update
// the live state; status messages become presence points and drive
// Online, following Sparkplug: a death whose bdseq is below the last
// birth's is late (its connection was already replaced) and is acknowledged
// but neither recorded nor applied. A death takes the broker's receipt time,
// because a will's own timestamp is from when the connection began.
// config/applied and cmd/result update the live state and are logged; they
// have no point.
//
// The wiring to the broker is one line:
//
//	broker.IntakeFunc(func(ctx context.Context, m broker.Message) error {
//		return in.Accept(ctx, m.Topic, m.Payload, m.Received)
//	})
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/intake/influx"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/internal/loglimit"
	"github.com/semko/semko/internal/textcut"
	"github.com/semko/semko/protocol"
)

// Errors for input that can never be accepted; each wraps
// protocol.ErrInvalid so protocol.Permanent reports true.
var (
	// ErrUnknownDevice: the topic names a device the registry does not know.
	ErrUnknownDevice = fmt.Errorf("%w: %w", protocol.ErrInvalid, registry.ErrUnknownDevice)
	// ErrSpoofed: the payload's device differs from the topic's. A device
	// may speak only for itself.
	ErrSpoofed = fmt.Errorf("%w: payload device differs from topic device", protocol.ErrInvalid)
	// ErrNotUpstream: the topic's kind is not one devices publish.
	ErrNotUpstream = fmt.Errorf("%w: not an upstream kind", protocol.ErrInvalid)
)

// ErrOptions is returned by New for an incomplete Options.
var ErrOptions = errors.New("invalid ingest options")

// Appender is the durable spool: Append returns once every record is on
// disk, or an error and then none of them counts as appended.
type Appender interface {
	Append(ctx context.Context, recs ...[]byte) error
}

// Defaults for Options.
const (
	DefaultMaxFuture = 5 * time.Minute
	// DefaultMaxAge lets an edge that was offline for weeks deliver its
	// outbox.
	DefaultMaxAge       = 35 * 24 * time.Hour
	DefaultSeenSize     = 1 << 16
	DefaultLogPerSecond = 10
)

// Options configures New. Registry and Spool are required.
type Options struct {
	// Registry returns the fleet snapshot in use (registry.Store.Current).
	Registry func() *registry.Registry
	Spool    Appender
	// Now is the clock timestamps are checked against. Default time.Now.
	Now func() time.Time
	// MaxFuture and MaxAge bound the timestamps taken as they are,
	// relative to Now: a vote or activation record beyond them is held
	// apart (clock.go), never discarded. Defaults DefaultMaxFuture and
	// DefaultMaxAge.
	MaxFuture, MaxAge time.Duration
	// SeenSize is how many recent (device, kind, seq, ts) keys are remembered
	// to skip duplicates. Default DefaultSeenSize.
	SeenSize int
	// LogPerSecond bounds the rejection lines logged per second.
	// Default DefaultLogPerSecond.
	LogPerSecond int
	// Logger receives rejections (rate-limited) and device reports.
	// Default: discard.
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// OnVote, when set, sees each vote once, after it is durably spooled
	// (never a duplicate, never a rejected one). It runs on the broker's
	// intake path before the device's acknowledgement, so it must not
	// block: hand the vote off (bounded) and return.
	OnVote func(v protocol.Vote, p registry.Placement)
}

// Ingest accepts upstream messages. It is safe for concurrent use and has
// no goroutines of its own.
type Ingest struct {
	opts   Options
	log    *slog.Logger
	m      *metrics
	seen   *seenSet
	window minuteWindow
	limit  *loglimit.Limiter

	mu     sync.Mutex
	states map[string]*liveState // bounded by the fleet: only known devices get one
	online int

	countMu    sync.Mutex
	accepted   uint64
	duplicates uint64
	rejected   map[string]uint64 // by reason
}

// New checks opts and returns an Ingest.
func New(opts Options) (*Ingest, error) {
	if opts.Registry == nil {
		return nil, fmt.Errorf("%w: Registry is required", ErrOptions)
	}
	if opts.Spool == nil {
		return nil, fmt.Errorf("%w: Spool is required", ErrOptions)
	}
	if opts.MaxFuture < 0 || opts.MaxAge < 0 || opts.SeenSize < 0 || opts.LogPerSecond < 0 {
		return nil, fmt.Errorf("%w: negative limit", ErrOptions)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxFuture == 0 {
		opts.MaxFuture = DefaultMaxFuture
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.SeenSize == 0 {
		opts.SeenSize = DefaultSeenSize
	}
	if opts.LogPerSecond == 0 {
		opts.LogPerSecond = DefaultLogPerSecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Ingest{
		opts:     opts,
		log:      opts.Logger,
		m:        m,
		seen:     newSeenSet(opts.SeenSize),
		limit:    loglimit.New(opts.LogPerSecond),
		states:   make(map[string]*liveState),
		rejected: make(map[string]uint64),
	}, nil
}

// Accept takes one upstream message published on topic t at time received
// (zero means Now). It returns nil once the message is durably spooled (or
// needs no point, or was spooled before). Otherwise protocol.Permanent(err)
// tells bad input (discard it) from transient trouble such as a full or
// closed spool (do not acknowledge; the device will resend).
func (i *Ingest) Accept(ctx context.Context, t protocol.Topic, payload []byte, received time.Time) error {
	start := time.Now()
	defer func() { i.m.seconds.Observe(time.Since(start).Seconds()) }()
	if received.IsZero() {
		received = i.opts.Now()
	}
	kind := kindOther
	if t.Kind.Upstream() {
		kind = string(t.Kind)
	}
	reason, err := i.accept(ctx, t, payload, received)
	switch {
	case err == nil:
		i.m.messages.WithLabelValues(kind).Inc()
		i.countMu.Lock()
		i.accepted++
		i.countMu.Unlock()
		return nil
	case reason == "":
		// Transient: the device keeps the message and resends it.
		return fmt.Errorf("ingest %s from %s: %w", kind, t.Device, err)
	}
	i.m.rejected.WithLabelValues(kind, reason).Inc()
	i.countMu.Lock()
	i.rejected[reason]++
	i.countMu.Unlock()
	if ok, suppressed := i.limit.Allow("ingest: message rejected", time.Now()); ok {
		attrs := []any{"device", textcut.Trunc(t.Device, 80), "kind", kind, "reason", reason, "err", textcut.Trunc(err.Error(), 300)}
		if suppressed > 0 {
			attrs = append(attrs, "suppressed_before", suppressed)
		}
		i.log.Warn("ingest: message rejected", attrs...)
	}
	return fmt.Errorf("ingest %s from %s: %s: %w", kind, textcut.Trunc(t.Device, 80), reason, err)
}

// accept does the work; a non-empty reason marks err as bad input.
func (i *Ingest) accept(ctx context.Context, t protocol.Topic, payload []byte, received time.Time) (reason string, err error) {
	if !t.Kind.Upstream() {
		return ReasonInvalid, fmt.Errorf("%w: %q", ErrNotUpstream, t.Kind)
	}
	if len(payload) > protocol.MaxPayload {
		return ReasonTooLarge, fmt.Errorf("%w: %d bytes, limit %d", protocol.ErrTooLarge, len(payload), protocol.MaxPayload)
	}
	reg := i.opts.Registry()
	place, known := reg.Placement(t.Device)
	if !known {
		return ReasonUnknownDevice, ErrUnknownDevice
	}
	now := i.opts.Now()

	switch t.Kind {
	case protocol.KindVote:
		v, reason, err := decode[protocol.Vote](payload)
		if err == nil {
			reason, err = i.checkDevice(t, v.Device)
		}
		if err != nil {
			return reason, err
		}
		var u influx.Unconfirmed
		v.Operator, v.Service, u = i.confine(reg, place, t, v.Operator, v.Service)
		if !knownChannels[v.Channel] {
			u.Channel, v.Channel = v.Channel, channelOther
			i.unconfirmed(t, "channel", u.Channel)
		}
		line := influx.VoteLineWith(nil, v, place, u)
		if !i.inRange(v.Time, now) {
			line = heldLine(line, influx.MeasurementVote)
		}
		added, err := i.appendOnce(ctx, seenKey{t.Device, t.Kind, v.Seq, v.Time.UnixNano()}, line)
		if err != nil {
			return "", err
		}
		if !i.inRange(v.Time, now) {
			// Held apart: not a rating until someone looks at the clock.
			i.held(t.Device, t.Kind, v.Time, received, added)
			return "", nil
		}
		if added && v.Valid {
			i.window.addVote(now, v.Satisfied())
		}
		if added && i.opts.OnVote != nil {
			i.opts.OnVote(v, place)
		}
		i.heard(t.Device, received, nil)

	case protocol.KindActivation:
		a, reason, err := decode[protocol.ActivationRecord](payload)
		if err == nil {
			reason, err = i.checkDevice(t, a.Device)
		}
		if err != nil {
			return reason, err
		}
		var u influx.Unconfirmed
		a.Operator, a.Service, u = i.confine(reg, place, t, a.Operator, a.Service)
		line := influx.ActivationLineWith(nil, a, place, u)
		if !i.inRange(a.Time, now) {
			line = heldLine(line, influx.MeasurementActivation)
		}
		added, err := i.appendOnce(ctx, seenKey{t.Device, t.Kind, a.Seq, a.Time.UnixNano()}, line)
		if err != nil {
			return "", err
		}
		if !i.inRange(a.Time, now) {
			i.held(t.Device, t.Kind, a.Time, received, added)
			return "", nil
		}
		// Each activation closes exactly once; counting closings counts
		// activations without remembering which ones were opened.
		if added && a.Closed {
			i.window.addActivation(now)
		}
		i.heard(t.Device, received, func(s *liveState) {
			if added {
				s.activation(a, received)
			}
		})

	case protocol.KindHeartbeat:
		h, reason, err := decode[protocol.Heartbeat](payload)
		if err == nil {
			reason, err = i.checkDevice(t, h.Device)
		}
		if err != nil {
			return reason, err
		}
		var u influx.Unconfirmed
		if !fwPattern.MatchString(h.FW) {
			u.FW, h.FW = h.FW, fwOther
			i.unconfirmed(t, "fw", u.FW)
		}
		// No seq to de-duplicate on; a resent heartbeat has the same
		// timestamp and tags, so it overwrites itself in InfluxDB. One
		// from a clock out of range is stored at its arrival; the live
		// state keeps its ts for the edge_clock diagnostic.
		point := h
		if !i.inRange(h.Time, now) {
			point.Time = received
		}
		if err := i.opts.Spool.Append(ctx, influx.HeartbeatLineWith(nil, point, place, u)); err != nil {
			return "", fmt.Errorf("spool heartbeat: %w", err)
		}
		i.heard(t.Device, received, func(s *liveState) { s.heartbeat(h, received) })

	case protocol.KindStatus:
		st, reason, err := decode[protocol.Status](payload)
		if err != nil {
			return reason, err
		}
		if st.Device != t.Device {
			return ReasonSpoofed, fmt.Errorf("%w: %q on the topic of %q", ErrSpoofed, st.Device, t.Device)
		}
		if st.Online {
			// A birth is made right after connecting, often before the
			// edge has the backend's time: out of range, take the arrival.
			if !i.inRange(st.Time, now) {
				st.Time = received
			}
		} else {
			// A death is usually the will, composed when the connection
			// began: its ts says nothing about when the connection ended.
			// The broker's receipt time does.
			st.Time = received
		}
		if !i.presence(st, received) {
			// A late death describes a connection already replaced: writing
			// it would show a live device as offline. Acknowledge and drop.
			i.m.lateDeaths.Inc()
			i.log.Debug("ingest: late death ignored", "device", t.Device, "bdseq", st.BDSeq)
			return "", nil
		}
		if err := i.opts.Spool.Append(ctx, influx.PresenceLine(nil, st, place)); err != nil {
			// The state already changed; the resend will set it again.
			return "", fmt.Errorf("spool presence: %w", err)
		}

	case protocol.KindConfigApplied:
		c, reason, err := decode[protocol.ConfigApplied](payload)
		if err == nil {
			reason, err = i.checkDevice(t, c.Device) // no point: its ts does not matter
		}
		if err != nil {
			return reason, err
		}
		i.heard(t.Device, received, func(s *liveState) {
			if c.OK {
				s.ConfigVersion, s.ConfigError = c.Version, ""
			} else {
				s.ConfigError = textcut.Trunc(c.Error, maxDeviceText)
			}
		})
		if c.OK {
			i.log.Info("ingest: config applied", "device", t.Device, "version", c.Version)
		} else {
			i.log.Warn("ingest: config refused", "device", t.Device, "version", c.Version, "err", textcut.Trunc(c.Error, maxDeviceText))
		}

	case protocol.KindCommandResult:
		c, reason, err := decode[protocol.CommandResult](payload)
		if err == nil {
			reason, err = i.checkDevice(t, c.Device) // no point: its ts does not matter
		}
		if err != nil {
			return reason, err
		}
		i.heard(t.Device, received, func(s *liveState) { s.commandResult(c, received) })
		i.log.Info("ingest: command result", "device", t.Device, "id", c.ID, "ok", c.OK,
			"err", textcut.Trunc(c.Error, maxDeviceText), "detail_keys", len(c.Detail))

	default:
		// Upstream() is true for exactly the kinds above; a new kind in
		// protocol must be handled here before devices may send it.
		return ReasonInvalid, fmt.Errorf("%w: %q not handled", ErrNotUpstream, t.Kind)
	}
	return "", nil
}

// decode parses a payload and names the reason it failed, if it did.
func decode[T protocol.Validator](payload []byte) (T, string, error) {
	v, err := protocol.Decode[T](payload)
	switch {
	case err == nil:
		return v, "", nil
	case errors.Is(err, protocol.ErrTooLarge):
		return v, ReasonTooLarge, err
	case errors.Is(err, protocol.ErrVersion):
		return v, ReasonVersion, err
	case !json.Valid(payload):
		// protocol.Decode wraps JSON syntax errors and failed rules in the
		// same ErrInvalid; only the failure path pays for telling them apart.
		return v, ReasonDecode, err
	}
	return v, ReasonInvalid, err
}

// checkDevice applies the rule every payload with a device shares: it
// speaks for the topic's device. Its clock is judged per kind (clock.go).
func (i *Ingest) checkDevice(t protocol.Topic, device string) (string, error) {
	if device != t.Device {
		return ReasonSpoofed, fmt.Errorf("%w: %q on the topic of %q", ErrSpoofed, device, t.Device)
	}
	return "", nil
}

// Tag values a device may choose within the known set.
var (
	knownChannels = map[string]bool{protocol.ChannelKeypad: true, protocol.ChannelWeb: true,
		protocol.ChannelEmail: true, protocol.ChannelQR: true, protocol.ChannelSMS: true}
	// fwPattern is a version: up to four dotted numbers, an optional "v"
	// before and a short pre-release or build suffix after ("1.4.2",
	// "v2.0.0-rc.1"). Anything else is not a firmware a keypad ships.
	fwPattern = regexp.MustCompile(`^v?[0-9]{1,5}(\.[0-9]{1,5}){0,3}([-+][0-9A-Za-z.]{1,20})?$`)
)

// The tag values that stand for a device's unconfirmed channel or firmware.
const (
	channelOther = "other"
	fwOther      = "unknown"
)

// confine checks the operator and service a vote or activation names
// against the registry: an operator of the device's organisation and a
// known service stay; anything else would make a new series of the
// device's choosing, so it is replaced by the counter's default (the
// returned empty string) and kept in u as a field, counted and logged.
func (i *Ingest) confine(reg *registry.Registry, p registry.Placement, t protocol.Topic, op, svc string) (string, string, influx.Unconfirmed) {
	var u influx.Unconfirmed
	if op != "" {
		if o, ok := reg.Operator(op); !ok || o.Org != p.Org {
			u.Operator, op = op, ""
			i.unconfirmed(t, "operator", u.Operator)
		}
	}
	if svc != "" {
		if _, ok := reg.Service(svc); !ok {
			u.Service, svc = svc, ""
			i.unconfirmed(t, "service", u.Service)
		}
	}
	return op, svc, u
}

// unconfirmed counts and logs (rate-limited) a tag value the backend did
// not take from a device.
func (i *Ingest) unconfirmed(t protocol.Topic, tag, value string) {
	i.m.unconfirmed.WithLabelValues(string(t.Kind), tag).Inc()
	if ok, suppressed := i.limit.Allow("ingest: tag value not confirmed", time.Now()); ok {
		attrs := []any{"device", textcut.Trunc(t.Device, 80), "kind", t.Kind, "tag", tag, "value", textcut.Trunc(value, 80)}
		if suppressed > 0 {
			attrs = append(attrs, "suppressed_before", suppressed)
		}
		i.log.Warn("ingest: tag value not confirmed, kept as a field", attrs...)
	}
}

// appendOnce spools line unless key was spooled before. It reports whether
// it appended. The key is remembered only after the append succeeded, so a
// failed append is retried in full when the device resends.
func (i *Ingest) appendOnce(ctx context.Context, key seenKey, line []byte) (bool, error) {
	if i.seen.has(key) {
		i.m.duplicates.Inc()
		i.countMu.Lock()
		i.duplicates++
		i.countMu.Unlock()
		return false, nil
	}
	if err := i.opts.Spool.Append(ctx, line); err != nil {
		return false, fmt.Errorf("spool %s seq %d: %w", key.kind, key.seq, err)
	}
	i.seen.add(key)
	return true, nil
}

// Summary is a one-glance view of the intake, for the terminal status line
// and GET /api/v1/summary.
type Summary struct {
	UnitsKnown               int     `json:"units_known"`
	UnitsOnline              int     `json:"units_online"`
	ActivationsLastMinute    int     `json:"activations_last_minute"` // activation records closed
	VotesLastMinute          int     `json:"votes_last_minute"`       // valid votes
	SatisfiedShareLastMinute float64 `json:"satisfied_share_last_minute"`
	Accepted                 uint64  `json:"accepted"`
	Duplicates               uint64  `json:"duplicates"`
	Rejected                 uint64  `json:"rejected"`
	// RejectedBy counts rejections by reason (Reason... constants).
	RejectedBy map[string]uint64 `json:"rejected_by"`
}

// Snapshot returns the current Summary. Counts are since the Ingest was
// created; "last minute" counts are by arrival.
func (i *Ingest) Snapshot() Summary {
	reg := i.opts.Registry()
	w := i.window.sum(i.opts.Now())
	s := Summary{
		UnitsKnown:            reg.Len(),
		ActivationsLastMinute: w.activations,
		VotesLastMinute:       w.votes,
		RejectedBy:            make(map[string]uint64, len(reasons)),
	}
	if w.votes > 0 {
		s.SatisfiedShareLastMinute = float64(w.satisfied) / float64(w.votes)
	}
	i.mu.Lock()
	for id, st := range i.states {
		if st.Online {
			if _, ok := reg.Device(id); ok {
				s.UnitsOnline++
			}
		}
	}
	i.mu.Unlock()
	i.countMu.Lock()
	s.Accepted, s.Duplicates = i.accepted, i.duplicates
	for _, r := range reasons {
		s.RejectedBy[r] = i.rejected[r]
		s.Rejected += i.rejected[r]
	}
	i.countMu.Unlock()
	return s
}
