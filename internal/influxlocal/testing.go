package influxlocal

import (
	"log/slog"
	"testing"
)

// StartForTest starts a fresh influxd in t.TempDir() with database "semko"
// and stops it when the test ends. It builds the binary first if needed and
// fails the test (never skips) if it cannot: the tests that use it prove
// Semko's delivery guarantees against a real InfluxDB. If the test failed,
// the tail of influxd's log is printed.
func StartForTest(t testing.TB) *Server {
	t.Helper()
	return StartForTestWith(t, Options{})
}

// StartForTestWith is StartForTest with opts (Dir and Logger are the
// test's own).
func StartForTestWith(t testing.TB, opts Options) *Server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	if _, err := Ensure(t.Context(), log); err != nil {
		t.Fatalf("influxlocal: cannot get an influxd binary (it is built with `go install`"+
			" from the Go module proxy, or set SEMKO_INFLUXD): %v", err)
	}
	opts.Dir, opts.Logger = t.TempDir(), log
	s, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("influxlocal: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tail of influxd log %s:\n%s", s.LogPath(), s.LogTail(50))
		}
		if err := s.Stop(); err != nil {
			t.Errorf("influxlocal: %v", err)
		}
	})
	return s
}
