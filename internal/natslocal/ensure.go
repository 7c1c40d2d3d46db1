// Package natslocal builds nats-server from the Go module proxy and runs a
// three-node NATS cluster with JetStream and MQTT on free loopback ports, as
// child processes that tests can SIGKILL, stop and start again one node at a
// time. It is internal/influxlocal's counterpart for the clustered front
// door (issue 14): real processes, cleanup by PID only.
package natslocal

import (
	"context"
	"log/slog"

	"github.com/semko/semko/internal/gotool"
)

// Version is the nats-server release this package builds and runs. The
// delivery guarantee in deploy/cluster/README.md was measured on it:
// re-measure before changing it.
const Version = "2.15.3"

// natsServer is built from the module proxy (the Makefile's `make
// nats-server` builds it at the same place); $SEMKO_NATS_SERVER names a
// binary to use instead.
var natsServer = gotool.Binary{
	Name: "nats-server", Module: "github.com/nats-io/nats-server/v2@v" + Version,
	Dir: "nats-server-" + Version, EnvVar: "SEMKO_NATS_SERVER",
}

// BinaryPath returns where nats-server is expected: $SEMKO_NATS_SERVER if
// set, else <user cache dir>/semko/nats-server-<Version>/bin/nats-server.
func BinaryPath() string { return natsServer.Path() }

// Ensure returns the path of a nats-server binary, building it with `go
// install` when it is missing. A path given by $SEMKO_NATS_SERVER is never
// built. Concurrent callers build it once.
func Ensure(ctx context.Context, log *slog.Logger) (string, error) {
	return natsServer.Ensure(ctx, log)
}
