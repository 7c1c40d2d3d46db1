package backend

import (
	"fmt"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/internal/connlimit"
	"github.com/semko/semko/internal/loglimit"
)

// httpGuard bounds the API's open connections per remote address, as the
// broker does for MQTT: one host opening connections without end would
// otherwise use up the process's file descriptors, and with them the
// broker's. A refused connection is closed at once, counted, and logged at
// most once a second (a storm must not flood the log).
type httpGuard struct {
	limit   int
	refused prometheus.Counter
	logs    *loglimit.Limiter
}

func newHTTPGuard(limit int) *httpGuard {
	if limit == 0 {
		limit = DefaultHTTPConnsPerAddr
	}
	return &httpGuard{
		limit: limit,
		logs:  loglimit.New(1),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "semko_http_conn_limited_total",
			Help: "HTTP connections closed at once because their address had the maximum open.",
		}),
	}
}

// listenHTTP opens the API's listener behind the per-address limit.
func (a *App) listenHTTP() (net.Listener, error) {
	ln, err := net.Listen("tcp", a.cfg.HTTP.Addr)
	if err != nil {
		return nil, fmt.Errorf("http listen: %w", err)
	}
	return connlimit.Listen(ln, connlimit.New(a.httpGuard.limit), a.httpRefused), nil
}

func (a *App) httpRefused(remote net.Addr) {
	const msg = "http connection refused: too many from one address"
	g := a.httpGuard
	g.refused.Inc()
	if ok, suppressed := g.logs.Allow(msg, time.Now()); ok {
		a.log.Warn(msg, "remote", remote.String(), "limit", g.limit, "suppressed_before", suppressed)
	}
}
