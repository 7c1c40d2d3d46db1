package broker

import (
	"errors"
	"sync/atomic"

	"github.com/semko/semko/protocol"
)

// Stats is a snapshot of the broker's counters, for /metrics. Counters only
// grow while the broker runs; gauges say "now".
type Stats struct {
	ClientsConnected int64 // gauge: network clients with an established session
	Subscriptions    int64 // gauge
	Retained         int64 // gauge: retained messages held, mochi's own $SYS entries (about 20) included
	Inflight         int64 // gauge: outbound QoS>0 messages awaiting acknowledgement

	MessagesIn     uint64 // PUBLISH packets from network clients that passed the ACL
	IntakeAccepted uint64 // device messages Intake made durable (wills included)
	AuthFailures   uint64 // refused connections
	ACLDenied      uint64 // refused publishes, subscriptions and wills
	// RejectedInvalid counts device messages Intake called permanently bad,
	// acknowledged and discarded, by reason: "invalid", "version",
	// "too_large", "clock", "topic".
	RejectedInvalid map[string]uint64
	IntakeRetries   uint64 // transient Intake failures: PUBACK withheld, the device resends
	WillIntakeFails uint64 // wills Intake failed to take (a will cannot be resent); still delivered
	RateLimited     uint64 // publishes refused (no PUBACK) by the per-client rate limit
	// RateDelayed counts publishes held until the client's rate allowed
	// them: the client is slowed through TCP backpressure, others are not.
	RateDelayed     uint64
	ConnLimited     uint64 // connections refused: their address had MaxConnsPerAddr open
	ConnectTimeouts uint64 // connections closed: no CONNECT within ConnectTimeout (half-open)
	BadConnects     uint64 // connections closed: the first packet was not a valid CONNECT (or TLS failed)
	Oversized       uint64 // connections closed for a packet over MaxPacketSize
	IdleTimeouts    uint64 // sessions closed after 1.5 keepalives of silence (see MaxKeepalive)
	// ResumeRepublished counts messages caught on a session being taken
	// over and published again to its successor (see resumeHook).
	ResumeRepublished uint64
	// Revoked counts sessions ended because their account was removed or
	// its secret or role changed while they were connected.
	Revoked uint64
	// Dropped counts outbound messages mochi discarded because a client's
	// write queue or inflight window was full (QoS 1 included).
	Dropped uint64
}

// Reasons a device message is rejected as invalid.
const (
	reasonInvalid  = "invalid"
	reasonVersion  = "version"
	reasonTooLarge = "too_large"
	reasonClock    = "clock"
	reasonTopic    = "topic"
)

var rejectReasons = []string{reasonInvalid, reasonVersion, reasonTooLarge, reasonClock, reasonTopic}

// counters are the broker's own counts, updated from hooks on many
// goroutines.
type counters struct {
	messagesIn, intakeAccepted, authFailures, aclDenied  atomic.Uint64
	intakeRetries, willIntakeFails, rateLimited          atomic.Uint64
	connLimited, connectTimeouts, badConnects, oversized atomic.Uint64
	idleTimeouts, rateDelayed, resumeRepublished         atomic.Uint64
	revoked                                              atomic.Uint64
	rejected                                             [5]atomic.Uint64 // indexed like rejectReasons
}

func (c *counters) reject(reason string) {
	for i, r := range rejectReasons {
		if r == reason {
			c.rejected[i].Add(1)
			return
		}
	}
	c.rejected[0].Add(1)
}

// rejectReason classifies a permanent Intake error with protocol's sentinels.
func rejectReason(err error) string {
	switch {
	case errors.Is(err, protocol.ErrVersion):
		return reasonVersion
	case errors.Is(err, protocol.ErrTooLarge):
		return reasonTooLarge
	case errors.Is(err, protocol.ErrClock):
		return reasonClock
	}
	return reasonInvalid
}
