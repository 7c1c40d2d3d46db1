package pglocal

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
)

// requireBinaries skips t without PostgreSQL's binaries, or fails it when
// CI=true: CI installs the postgresql package and must run these tests.
func requireBinaries(t testing.TB) {
	t.Helper()
	if _, err := BinDir(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("pglocal: %v; CI=true requires the PostgreSQL tests to run", err)
		}
		t.Skipf("pglocal: %v", err)
	}
}

// tempDir makes a directory the postgres user can reach when we are root:
// t.TempDir's parent is private to root (0700), /tmp is not.
func tempDir() (string, error) { return os.MkdirTemp("", "pglocal-") }

// StartForTest starts a fresh server of the test's own (for fault tests
// that stop or kill it) and stops it when the test ends. It skips the test
// when the binaries are missing, unless CI=true. If the test failed, the
// tail of the server's log is printed.
func StartForTest(t testing.TB) *Server {
	t.Helper()
	requireBinaries(t)
	dir, err := tempDir()
	if err != nil {
		t.Fatalf("pglocal: %v", err)
	}
	s, err := Start(t.Context(), Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("pglocal: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tail of postgres log %s:\n%s", s.LogPath(), s.LogTail(40))
		}
		if err := s.Stop(); err != nil {
			t.Errorf("pglocal: %v", err)
		}
		os.RemoveAll(dir)
	})
	return s
}

// CreateDB creates a new, empty database for t on s and returns its DSN.
// The database is left to the server's end (dropping it would have to wait
// for every pool the test opened to close).
func (s *Server) CreateDB(t testing.TB) string {
	t.Helper()
	dsn, err := s.CreateDatabase(t.Context(), s.NextName(dbPrefix(t)))
	if err != nil {
		t.Fatalf("pglocal: %v", err)
	}
	return dsn
}

// dbPrefix makes a readable database name from the test's name (its log
// lines then say which test a database belongs to).
func dbPrefix(t testing.TB) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		if b.Len() >= 40 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return "t_" + b.String()
}

// The shared server: one per test binary, started on first use by
// SharedDB and stopped by Main.
var shared struct {
	once sync.Once
	s    *Server
	dir  string
	err  error
}

// SharedDB creates a new database for t on the test binary's shared server
// (started on first use) and returns its DSN. Packages that use it call
// Main from TestMain, which stops the server at the end; without it the
// server dies with the test binary (Pdeathsig) but leaves its directory.
func SharedDB(t testing.TB) string {
	t.Helper()
	requireBinaries(t)
	shared.once.Do(func() {
		shared.dir, shared.err = tempDir()
		if shared.err != nil {
			return
		}
		// Not the test's context: the server outlives this test.
		shared.s, shared.err = Start(context.Background(), Options{Dir: shared.dir})
	})
	if shared.err != nil {
		t.Fatalf("pglocal: shared server: %v", shared.err)
	}
	return shared.s.CreateDB(t)
}

// Main runs the tests and then stops the shared server, if one was started,
// and removes its directory. Use it as `func TestMain(m *testing.M) {
// pglocal.Main(m) }`.
func Main(m *testing.M) {
	code := m.Run()
	if shared.s != nil {
		if err := shared.s.Stop(); err != nil {
			slog.Error("pglocal: shared server", "err", err)
		}
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}
