package ingest

import (
	"github.com/semko/semko/backend/intake/influx"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/protocol"
)

// The registry keeps its own Placement so that it does not depend on the
// InfluxDB adapter; the two have the same fields, so converting is free.

func voteLine(dst []byte, v protocol.Vote, p registry.Placement) []byte {
	return influx.VoteLine(dst, v, influx.Placement(p))
}

func activationLine(dst []byte, a protocol.ActivationRecord, p registry.Placement) []byte {
	return influx.ActivationLine(dst, a, influx.Placement(p))
}

func heartbeatLine(dst []byte, h protocol.Heartbeat, p registry.Placement) []byte {
	return influx.HeartbeatLine(dst, h, influx.Placement(p))
}

func presenceLine(dst []byte, s protocol.Status, p registry.Placement) []byte {
	return influx.PresenceLine(dst, s, influx.Placement(p))
}
