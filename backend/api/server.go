package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/internal/connlimit"
	"github.com/semko/semko/internal/loglimit"
)

// ServerOptions configure the API's listener.
type ServerOptions struct {
	Addr              string // host:port; port 0 picks one
	CertFile, KeyFile string // both set: HTTPS
	// MaxConnsPerAddr bounds the open connections per remote address, as
	// the broker does for MQTT: one host opening connections without end
	// would otherwise use up the process's file descriptors, and with them
	// the broker's. Negative: no limit.
	MaxConnsPerAddr int
	Logger          *slog.Logger
	Registerer      prometheus.Registerer
}

// Server serves a handler as one part of the backend: Run listens, serves
// until ctx ends, then shuts down, giving requests in flight 5 seconds.
type Server struct {
	opts    ServerOptions
	srv     *http.Server
	refused prometheus.Counter
	logs    *loglimit.Limiter
	ln      net.Listener // set before started closes
	started chan struct{}
}

// NewServer prepares the server; nothing listens until Run.
func NewServer(h http.Handler, opts ServerOptions) (*Server, error) {
	if opts.MaxConnsPerAddr == 0 {
		return nil, errors.New("api server: MaxConnsPerAddr is zero (negative: no limit)")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:    opts,
		logs:    loglimit.New(1),
		started: make(chan struct{}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "semko_http_conn_limited_total",
			Help: "HTTP connections closed at once because their address had the maximum open.",
		}),
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
		},
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(s.refused); err != nil {
			return nil, fmt.Errorf("api server metrics: %w", err)
		}
	}
	return s, nil
}

// Started is closed once Run listens.
func (s *Server) Started() <-chan struct{} { return s.started }

// Addr is the listening address, once Started is closed.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run listens and serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	s.ln = connlimit.Listen(ln, connlimit.New(s.opts.MaxConnsPerAddr), s.onRefused)
	close(s.started)
	errc := make(chan error, 1)
	go func() {
		if s.opts.CertFile != "" {
			errc <- s.srv.ServeTLS(s.ln, s.opts.CertFile, s.opts.KeyFile)
		} else {
			errc <- s.srv.Serve(s.ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(shutdownCtx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http: %w", err)
	}
	return nil
}

// onRefused counts a connection closed at once and logs it at most once a
// second (a storm must not flood the log).
func (s *Server) onRefused(remote net.Addr) {
	const msg = "http connection refused: too many from one address"
	s.refused.Inc()
	if ok, suppressed := s.logs.Allow(msg, time.Now()); ok {
		s.opts.Logger.Warn(msg, "remote", remote.String(), "limit", s.opts.MaxConnsPerAddr, "suppressed_before", suppressed)
	}
}
