package ingest

import (
	"github.com/semko/semko/backend/influx"
	"github.com/semko/semko/backend/registry"
	"github.com/semko/semko/protocol"
)

// The registry keeps its own Placement so that it does not depend on the
// InfluxDB adapter; the two have the same fields, so converting is free.

func voteLine(dst []byte, v protocol.Vote, p registry.Placement, u influx.Unconfirmed) []byte {
	return influx.VoteLineWith(dst, v, influx.Placement(p), u)
}

func activationLine(dst []byte, a protocol.ActivationRecord, p registry.Placement, u influx.Unconfirmed) []byte {
	return influx.ActivationLineWith(dst, a, influx.Placement(p), u)
}

func heartbeatLine(dst []byte, h protocol.Heartbeat, p registry.Placement, u influx.Unconfirmed) []byte {
	return influx.HeartbeatLineWith(dst, h, influx.Placement(p), u)
}

func presenceLine(dst []byte, s protocol.Status, p registry.Placement) []byte {
	return influx.PresenceLine(dst, s, influx.Placement(p))
}
