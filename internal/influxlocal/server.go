// Package influxlocal runs a real InfluxDB 1.8.10 server as a child process,
// for tests and for `make run`. The binary is built from the Go module proxy on
// first use and cached, so a machine needs only the Go toolchain.
//
// The package is Unix-only (process groups, flock).
package influxlocal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	startTimeout  = 60 * time.Second
	stopTimeout   = 10 * time.Second
	startAttempts = 5
)

// errAddrInUse marks a start that failed because a port was taken between
// our picking it and influxd binding it.
var errAddrInUse = errors.New("address already in use")

// Options configures Start.
type Options struct {
	// Dir is the data root: meta/, data/, wal/, influxd.conf (and the log,
	// unless LogFile is set) live under it. Required.
	Dir string
	// HTTPAddr is the HTTP listen address. Default "127.0.0.1:0": a free
	// loopback port. `make run` uses "127.0.0.1:8086".
	HTTPAddr string
	// Database is created on start if missing. Default "semko".
	Database string
	// Logger receives the harness's own messages. Default slog.Default().
	Logger *slog.Logger
	// LogFile receives influxd's stdout and stderr (appended). Default
	// <Dir>/influxd.log.
	LogFile string
	// IndexVersion is [data] index-version: "tsi1" (default) or "inmem".
	// InfluxDB 1.8 enforces MaxSeriesPerDatabase and MaxValuesPerTag only
	// with inmem.
	IndexVersion string
	// MaxSeriesPerDatabase is [data] max-series-per-database. 0: default
	// DefaultMaxSeries; negative: no limit. SetLimits changes it for the
	// next Restart.
	MaxSeriesPerDatabase int
	// MaxValuesPerTag is [data] max-values-per-tag; 0: no limit.
	MaxValuesPerTag int
}

// Server is a running (or stopped) influxd child process. Its methods are
// safe for concurrent use.
type Server struct {
	bin, dir, db, logPath string
	httpAddr              string // fixed once Start returns: Restart keeps the URL
	log                   *slog.Logger

	mu   sync.Mutex // serialises start/stop; guards proc and lim
	proc *process   // nil while stopped
	lim  limits     // written to influxd.conf on every start
}

// process is one run of influxd.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // result of cmd.Wait, valid after done is closed
}

// signal sends sig to the process's group (it has its own, see sysProcAttr).
func (p *process) signal(sig syscall.Signal) {
	_ = syscall.Kill(-p.cmd.Process.Pid, sig) // ESRCH: already gone, fine
}

// Start builds influxd if needed (see Ensure), starts it in opts.Dir, waits
// until it answers /ping and creates the database. ctx bounds the start-up
// only: the server runs until Stop or Kill.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("start influxd: Options.Dir is required")
	}
	if opts.HTTPAddr == "" {
		opts.HTTPAddr = "127.0.0.1:0"
	}
	if opts.Database == "" {
		opts.Database = "semko"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	lim := limits{index: opts.IndexVersion, maxSeries: opts.MaxSeriesPerDatabase, maxValuesPerTag: opts.MaxValuesPerTag}
	switch lim.index {
	case "":
		lim.index = DefaultIndexVersion
	case "tsi1", "inmem":
	default:
		return nil, fmt.Errorf("start influxd: index version %q: want tsi1 or inmem", lim.index)
	}
	switch {
	case lim.maxSeries == 0:
		lim.maxSeries = DefaultMaxSeries
	case lim.maxSeries < 0:
		lim.maxSeries = 0 // influxd's "no limit"
	}
	lim.maxValuesPerTag = max(lim.maxValuesPerTag, 0)
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start influxd: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("start influxd: %w", err)
	}
	if opts.LogFile == "" {
		opts.LogFile = filepath.Join(dir, "influxd.log")
	}
	bin, err := Ensure(ctx, opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("start influxd: %w", err)
	}
	// A fixed port that is taken gets a clear message now rather than after
	// the retries, with the most likely cause.
	if _, port, err := net.SplitHostPort(opts.HTTPAddr); err == nil && port != "0" {
		l, err := net.Listen("tcp", opts.HTTPAddr)
		if err != nil {
			return nil, fmt.Errorf("start influxd: %s is not free (another InfluxDB running?): %w", opts.HTTPAddr, err)
		}
		l.Close()
	}
	s := &Server{bin: bin, dir: dir, db: opts.Database, logPath: opts.LogFile,
		httpAddr: opts.HTTPAddr, log: opts.Logger, lim: lim}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.startLocked(ctx); err != nil {
		return nil, fmt.Errorf("start influxd: %w", err)
	}
	return s, nil
}

// URL is the HTTP base URL, for example "http://127.0.0.1:38211".
func (s *Server) URL() string { return "http://" + s.httpAddr }

// Database is the database created on start.
func (s *Server) Database() string { return s.db }

// Dir is the data root.
func (s *Server) Dir() string { return s.dir }

// LogPath is the file influxd's output goes to.
func (s *Server) LogPath() string { return s.logPath }

// Stop shuts influxd down with SIGTERM, and SIGKILL if it has not exited
// within 10 s. Stopping a stopped server is a no-op. It reports an error if
// influxd had already died on its own, or did not stop cleanly.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

func (s *Server) stopLocked() error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	select {
	case <-p.done:
		return fmt.Errorf("stop influxd: it had already exited: %w", p.err)
	default:
	}
	p.signal(syscall.SIGTERM)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("stop influxd: %w", p.err)
		}
		s.log.Info("influxd stopped", "url", s.URL())
		return nil
	case <-timer.C:
	}
	s.log.Warn("influxd did not stop in time, killing it", "timeout", stopTimeout)
	p.signal(syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("stop influxd: no clean shutdown within %s, killed", stopTimeout)
}

// Kill stops influxd with SIGKILL, as a crash or power cut would, and waits
// for it to exit. Writes it acknowledged survive (the WAL is fsynced).
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.proc; p != nil {
		s.proc = nil
		p.signal(syscall.SIGKILL)
		<-p.done
		s.log.Info("influxd killed", "url", s.URL())
	}
}

// SetLimits changes max-series-per-database (0 or less: no limit) for the
// next Restart, as an operator raising the limit would: fault tests fill a
// small limit, then restart influxd with a larger one on the same data.
func (s *Server) SetLimits(maxSeriesPerDatabase int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lim.maxSeries = max(maxSeriesPerDatabase, 0)
}

// Restart stops influxd if it is running and starts it again with the same
// directory and URL. After Stop or Kill it brings the server back: fault
// tests call Stop/Kill, wait, then Restart to simulate an outage.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stopLocked(); err != nil {
		// Still start again: the caller wants a running server.
		s.log.Warn("restart influxd", "err", err)
	}
	if err := s.startLocked(ctx); err != nil {
		return fmt.Errorf("restart influxd: %w", err)
	}
	return nil
}

// startLocked starts influxd, retrying when a port we picked was taken in the
// meantime. On the first start a ":0" HTTP port is replaced by the one picked;
// later starts reuse it. The RPC port is always picked afresh.
func (s *Server) startLocked(ctx context.Context) error {
	host, port, err := net.SplitHostPort(s.httpAddr)
	if err != nil {
		return fmt.Errorf("HTTP address %q: %w", s.httpAddr, err)
	}
	pickHTTP := port == "0"
	for attempt := 1; ; attempt++ {
		httpAddr := s.httpAddr
		if pickHTTP {
			if httpAddr, err = freeAddr(host); err != nil {
				return err
			}
		}
		bindAddr, err := freeAddr("127.0.0.1")
		if err != nil {
			return err
		}
		err = s.startOnce(ctx, httpAddr, bindAddr)
		if err == nil {
			if pickHTTP {
				s.httpAddr = httpAddr // only ever before Start returns: URL reads it unlocked
			}
			break
		}
		if !errors.Is(err, errAddrInUse) || attempt == startAttempts {
			return err
		}
		s.log.Warn("influxd could not bind a port, retrying", "attempt", attempt, "err", err)
		if !pickHTTP {
			// A fixed port may be in the hands of a process that is exiting.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	if _, err := Query(ctx, s.URL(), "", "CREATE DATABASE "+quoteIdent(s.db)); err != nil {
		// Do not leave a process behind that the caller does not know of.
		s.proc.signal(syscall.SIGKILL)
		<-s.proc.done
		s.proc = nil
		return fmt.Errorf("create database %s: %w", s.db, err)
	}
	s.log.Info("influxd ready", "url", s.URL(), "db", s.db, "dir", s.dir, "log", s.logPath)
	return nil
}

// freeAddr asks the kernel for a free port on host. The port is released
// before influxd binds it, hence the retries in startLocked.
func freeAddr(host string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startOnce runs influxd and waits for /ping. On failure the process is gone.
func (s *Server) startOnce(ctx context.Context, httpAddr, bindAddr string) error {
	conf, err := writeConfig(s.dir, httpAddr, bindAddr, s.lim)
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	// influxd writes to the file directly (no copying goroutine); we only
	// remember where this run's output starts, for error messages.
	logStart, _ := logf.Seek(0, io.SeekEnd)
	cmd := exec.Command(s.bin, "run", "-config", conf)
	cmd.Dir = s.dir
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	logf.Close() // the child has its own copy
	if err != nil {
		return fmt.Errorf("run %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	// Owned by p: ends when influxd exits, which Stop/Kill guarantee.
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	if err := waitReady(ctx, p, "http://"+httpAddr+"/ping"); err != nil {
		p.signal(syscall.SIGKILL)
		<-p.done
		out := readFrom(s.logPath, logStart)
		if strings.Contains(out, "address already in use") {
			err = fmt.Errorf("%w: %v", errAddrInUse, err)
		}
		return fmt.Errorf("%w\n--- tail of %s ---\n%s", err, s.logPath, tail(out, 30))
	}
	s.proc = p
	return nil
}

// waitReady polls url until it answers 204, p exits, ctx ends or startTimeout
// passes.
func waitReady(ctx context.Context, p *process, url string) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if ping(ctx, url) {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("influxd exited during start-up: %w", p.err)
		case <-ctx.Done():
			return fmt.Errorf("influxd not ready at %s: %w", url, ctx.Err())
		case <-tick.C:
		}
	}
}

func ping(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusNoContent
}

// childEnv is our environment without INFLUXDB_* variables: influxd reads
// them as config overrides, and a stray one (say from a developer's shell)
// must not move ports or directories.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "INFLUXDB_") {
			env = append(env, kv)
		}
	}
	return env
}

// readFrom returns the content of path from offset on ("" on error).
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// LogTail returns the last n lines of influxd's log file.
func (s *Server) LogTail(n int) string {
	var from int64
	if fi, err := os.Stat(s.logPath); err == nil && fi.Size() > 64<<10 {
		from = fi.Size() - 64<<10 // the log of a long `make run` can be large
	}
	return tail(readFrom(s.logPath, from), n)
}

func quoteIdent(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
