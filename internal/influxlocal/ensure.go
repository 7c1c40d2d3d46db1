package influxlocal

import (
	"context"
	"log/slog"

	"github.com/semko/semko/internal/gotool"
)

// Version is the InfluxDB release this package builds and runs.
const Version = "1.8.10"

// influxd is built from the module proxy; $SEMKO_INFLUXD names a binary to
// use instead.
var influxd = gotool.Binary{
	Name: "influxd", Module: "github.com/influxdata/influxdb/cmd/influxd@v" + Version,
	Dir: "influxdb-" + Version, EnvVar: "SEMKO_INFLUXD",
}

// BinaryPath returns where the influxd binary is expected: $SEMKO_INFLUXD if
// set, else <user cache dir>/semko/influxdb-1.8.10/bin/influxd.
func BinaryPath() string { return influxd.Path() }

// Ensure returns the path of an influxd binary, building it with `go install`
// when it is missing. A path given by $SEMKO_INFLUXD is never built: it must
// exist. Concurrent callers, in this process or others, build it once.
func Ensure(ctx context.Context, log *slog.Logger) (string, error) { return influxd.Ensure(ctx, log) }

func tail(s string, n int) string { return gotool.Tail(s, n) }
