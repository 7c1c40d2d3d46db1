// Package pglocal runs a real PostgreSQL server as a child process, for tests
// and for a cluster on one machine: Debian's binaries (`apt-get install
// postgresql`), a private data directory, a free loopback port and its own
// socket directory, so it never touches the distribution's cluster.
//
// The package is Unix-only (process groups, credentials).
package pglocal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

const (
	startTimeout  = 60 * time.Second
	stopTimeout   = 15 * time.Second
	startAttempts = 5
	// Superuser is the role initdb creates; it logs in without a password
	// from loopback (trust), which is all a private test server needs.
	Superuser = "postgres"
)

// ErrNoBinaries means no PostgreSQL server binaries were found.
var ErrNoBinaries = errors.New("no PostgreSQL binaries (install Debian's postgresql package: apt-get install -y postgresql; or set SEMKO_PG_BIN to the directory holding initdb and postgres)")

var errAddrInUse = errors.New("address already in use")

// Options configures Start.
type Options struct {
	// Dir holds data/ (the cluster), sock/ (the unix socket) and
	// postgres.log. Required. When we run as root the server runs as the
	// `postgres` system user, which must be able to reach Dir.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one (kept across
	// restarts).
	Port int
	// Durable turns fsync on. Off by default: a test server's data need not
	// survive a power cut, and fsync would load the shared disk. A SIGKILL
	// (Kill) loses nothing either way: a commit returns only after its WAL
	// record is written to the kernel.
	Durable bool
	// Logger receives the harness's own messages. Default slog.Default().
	Logger *slog.Logger
}

// Server is a PostgreSQL server (running or stopped). Its methods are safe
// for concurrent use.
type Server struct {
	bin, dir, logPath string
	port              int
	durable           bool
	cred              *syscall.Credential // nil unless we are root
	log               *slog.Logger

	mu   sync.Mutex // serialises start/stop; guards proc
	proc *process
	seq  int // databases created, for unique names
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// BinDir finds the directory holding initdb and postgres: $SEMKO_PG_BIN, or
// the newest /usr/lib/postgresql/<version>/bin.
func BinDir() (string, error) {
	if d := os.Getenv("SEMKO_PG_BIN"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err != nil {
			return "", fmt.Errorf("SEMKO_PG_BIN=%s: %w", d, err)
		}
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var found []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
				found = append(found, d)
			}
		}
	}
	if len(found) == 0 {
		return "", ErrNoBinaries
	}
	version := func(d string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		return n
	}
	sort.Slice(found, func(i, j int) bool { return version(found[i]) > version(found[j]) })
	return found[0], nil
}

// Start creates the cluster in opts.Dir if it does not exist yet (initdb),
// starts the server and waits until it accepts connections. ctx bounds the
// start-up only.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("start postgres: Options.Dir is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	bin, err := BinDir()
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s := &Server{bin: bin, dir: dir, logPath: filepath.Join(dir, "postgres.log"),
		port: opts.Port, durable: opts.Durable, log: opts.Logger}
	if err := s.prepare(ctx); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.startLocked(ctx); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	return s, nil
}

// prepare makes the directories and runs initdb when data/ is new. initdb
// and postgres refuse to run as root; then both run as the `postgres` user
// the Debian package creates, owning Dir.
func (s *Server) prepare(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Join(s.dir, "sock"), 0o700); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root, postgres must run as the `postgres` user (created by Debian's postgresql package): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
		for _, p := range []string{s.dir, filepath.Join(s.dir, "sock")} {
			if err := os.Chown(p, uid, gid); err != nil {
				return err
			}
		}
		if f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640); err == nil {
			f.Close()
			_ = os.Chown(s.logPath, uid, gid)
		}
	}
	data := filepath.Join(s.dir, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err == nil {
		return nil
	}
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "initdb"), "-D", data, "-U", Superuser,
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	cmd.Dir = s.dir
	cmd.Env = childEnv()
	cmd.SysProcAttr = s.sysProcAttr()
	out, err := cmd.CombinedOutput()
	if err != nil {
		hint := ""
		if s.cred != nil {
			hint = " (as root, every directory above " + s.dir + " must be searchable by the postgres user)"
		}
		return fmt.Errorf("initdb%s: %w\n%s", hint, err, tail(string(out), 20))
	}
	return nil
}

// Port is the TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Dir is the directory given in Options.
func (s *Server) Dir() string { return s.dir }

// LogPath is the file the server's output goes to.
func (s *Server) LogPath() string { return s.logPath }

// DSN is a connection URL for database db as the superuser.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, s.port, db)
}

// CreateDatabase creates database name (a plain identifier) and returns its
// DSN.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgconn.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `CREATE DATABASE "`+name+`"`).ReadAll(); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return s.DSN(name), nil
}

// NextName returns a new database name, unique for this server.
func (s *Server) NextName(prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("%s_%d", prefix, s.seq)
}

// Stop shuts the server down (fast shutdown: clients are disconnected,
// transactions in flight roll back) and waits; SIGKILL after 15 s. Stopping
// a stopped server is a no-op.
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
		return fmt.Errorf("stop postgres: it had already exited: %w", p.err)
	default:
	}
	// SIGINT to the postmaster is PostgreSQL's "fast" shutdown; SIGTERM
	// ("smart") would wait for every client to disconnect.
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		s.log.Info("postgres stopped", "port", s.port)
		return nil
	case <-timer.C:
	}
	killTree(p)
	return fmt.Errorf("stop postgres: no clean shutdown within %s, killed", stopTimeout)
}

// Kill stops the server and all its backends with SIGKILL, as a crash
// would, and waits for the postmaster to exit. The next Start recovers from
// the WAL.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.proc; p != nil {
		s.proc = nil
		killTree(p)
		s.log.Info("postgres killed", "port", s.port)
	}
}

// killTree SIGKILLs the postmaster and its children and waits until all are
// gone. The children are not in the postmaster's process group (each calls
// setsid), so they are found by parent; a child left alive would keep the
// shared memory and stop the next start.
func killTree(p *process) {
	pid := p.cmd.Process.Pid
	children := childrenOf(pid)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	for _, c := range children {
		_ = syscall.Kill(c, syscall.SIGKILL)
	}
	<-p.done
	// Bounded: SIGKILL cannot be ignored; the kernel needs only a moment.
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range children {
		for alive(c) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// childrenOf lists the processes whose parent is pid, from /proc.
func childrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(c); ok && ppid == pid {
			out = append(out, c)
		}
	}
	return out
}

// alive reports whether pid exists and is not a zombie (a zombie holds no
// memory; in a container nobody may reap it).
func alive(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// procStat reads the parent pid and state from /proc/<pid>/stat.
func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0][0], err == nil
}

// Restart starts the server again after Stop or Kill (stopping it first if
// it runs), on the same port and data.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stopLocked(); err != nil {
		s.log.Warn("restart postgres", "err", err)
	}
	if err := s.startLocked(ctx); err != nil {
		return fmt.Errorf("restart postgres: %w", err)
	}
	return nil
}

func (s *Server) startLocked(ctx context.Context) error {
	pick := s.port == 0
	for attempt := 1; ; attempt++ {
		port := s.port
		if pick {
			var err error
			if port, err = freePort(); err != nil {
				return err
			}
		}
		err := s.startOnce(ctx, port)
		if err == nil {
			s.port = port
			s.log.Info("postgres ready", "port", port, "dir", s.dir, "log", s.logPath)
			return nil
		}
		if !errors.Is(err, errAddrInUse) || attempt == startAttempts {
			return err
		}
		s.log.Warn("postgres could not bind its port, retrying", "attempt", attempt, "err", err)
		if !pick {
			// A fixed port may still be held by the server we just killed.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

func (s *Server) startOnce(ctx context.Context, port int) error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	logStart, _ := logf.Seek(0, io.SeekEnd)
	fsync := "off"
	if s.durable {
		fsync = "on"
	}
	args := []string{"-D", filepath.Join(s.dir, "data"), "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + filepath.Join(s.dir, "sock"),
		"-c", "fsync=" + fsync,
		"-c", "full_page_writes=" + fsync,
		// Tests open a pool per store; the default 100 is short when a
		// package runs several suites, each with a few pools.
		"-c", "max_connections=200",
		"-c", "shared_buffers=32MB",
		"-c", "log_min_messages=warning",
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), args...)
	cmd.Dir = s.dir
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = s.sysProcAttr()
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return fmt.Errorf("run postgres: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	// Owned by p: ends when postgres exits, which Stop/Kill guarantee.
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := waitReady(ctx, p, port); err != nil {
		killTree(p)
		out := readFrom(s.logPath, logStart)
		if strings.Contains(out, "Address already in use") || strings.Contains(out, "could not create any TCP/IP sockets") {
			err = fmt.Errorf("%w: %v", errAddrInUse, err)
		}
		return fmt.Errorf("%w\n--- tail of %s ---\n%s", err, s.logPath, tail(out, 30))
	}
	s.proc = p
	return nil
}

// waitReady connects until the server accepts a connection (not only the
// TCP handshake: during crash recovery it answers "starting up").
func waitReady(ctx context.Context, p *process, port int) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	dsn := fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", Superuser, port)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		conn, err := pgconn.Connect(ctx, dsn)
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		last = err
		select {
		case <-p.done:
			return fmt.Errorf("postgres exited during start-up: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready on port %d: %w (last: %v)", port, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// sysProcAttr: own process group (Ctrl-C reaches us, and we stop the
// server cleanly; Kill can take every backend at once), Pdeathsig so an
// orphan does not keep the port and directory when the test binary dies,
// and the postgres user's credentials when we are root (Go sets the parent
// death signal after changing credentials, so it survives the change).
func (s *Server) sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: s.cred}
}

// childEnv drops PG* variables: libpq-style settings from a developer's
// shell must not change where the server or initdb look.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// LogTail returns the last n lines of the server's log.
func (s *Server) LogTail(n int) string { return tail(readFrom(s.logPath, 0), n) }

func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	return string(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
