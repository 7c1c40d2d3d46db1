package influxlocal

import (
	"context"
	"net/http"
	"time"

	"github.com/semko/semko/internal/influxdb"
)

// httpClient bounds the readiness pings even if a caller's ctx has no
// deadline.
var httpClient = &http.Client{Timeout: time.Minute}

// Query runs InfluxQL q against the server's database, through the one
// InfluxDB adapter (internal/influxdb).
func (s *Server) Query(ctx context.Context, q string) ([]influxdb.Series, error) {
	return Query(ctx, s.URL(), s.db, q)
}

// Query runs InfluxQL q against db ("" for none) on the InfluxDB at
// baseURL; see influxdb.Query.
func Query(ctx context.Context, baseURL, db, q string) ([]influxdb.Series, error) {
	return influxdb.Query(ctx, baseURL, db, q)
}
