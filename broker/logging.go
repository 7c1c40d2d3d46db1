package broker

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/semko/semko/internal/loglimit"
)

// DefaultWarnPerSecond bounds the warnings of one kind logged per second.
const DefaultWarnPerSecond = 10

// keyLimiter lets one line per key through per interval, for events that
// are routine for one client but worth one line (a device slowed to its
// rate). Keys are forgotten on disconnect, so it holds at most one entry
// per connected client.
type keyLimiter struct {
	every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time
}

func newKeyLimiter(every time.Duration) *keyLimiter {
	return &keyLimiter{every: every, last: make(map[string]time.Time)}
}

func (l *keyLimiter) allow(key string) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, ok := l.last[key]; ok && now.Sub(last) < l.every {
		return false
	}
	l.last[key] = now
	return true
}

func (l *keyLimiter) forget(key string) {
	l.mu.Lock()
	delete(l.last, key)
	l.mu.Unlock()
}

// warn logs a warning about a client, bounded by the log limiter.
func (b *Broker) warn(msg string, attrs ...any) {
	ok, suppressed := b.logLimit.Allow(msg, time.Now())
	if !ok {
		return
	}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed_before", suppressed)
	}
	b.log.Warn(msg, attrs...)
}

// mochiHandler is the slog handler mochi logs through. mochi logs whole
// packets on some errors ("error processing packet", with a second CONNECT
// and its password in it): packets are reduced to their type, topic and
// size, so no secret and no payload reaches the log. Warnings and errors
// are bounded per message like the broker's own ("client store quota
// reached" comes once per dropped message).
type mochiHandler struct {
	next  slog.Handler
	limit *loglimit.Limiter
}

func (h *mochiHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *mochiHandler) Handle(ctx context.Context, r slog.Record) error {
	suppressed := 0
	if r.Level >= slog.LevelWarn {
		var ok bool
		if ok, suppressed = h.limit.Allow("mochi: "+r.Message, time.Now()); !ok {
			return nil
		}
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactPacket(a))
		return true
	})
	if suppressed > 0 {
		out.AddAttrs(slog.Int("suppressed_before", suppressed))
	}
	return h.next.Handle(ctx, out)
}

func (h *mochiHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = redactPacket(a)
	}
	return &mochiHandler{next: h.next.WithAttrs(red), limit: h.limit}
}

func (h *mochiHandler) WithGroup(name string) slog.Handler {
	return &mochiHandler{next: h.next.WithGroup(name), limit: h.limit}
}

// redactPacket replaces a logged mochi packet by a summary without
// credentials or payload.
func redactPacket(a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindAny {
		return a
	}
	var pk packets.Packet
	switch v := a.Value.Any().(type) {
	case packets.Packet:
		pk = v
	case *packets.Packet:
		if v == nil {
			return a
		}
		pk = *v
	default:
		return a
	}
	return slog.Group(a.Key,
		"type", int(pk.FixedHeader.Type), "topic", truncate(pk.TopicName), "id", pk.PacketID, "payload_bytes", len(pk.Payload))
}
