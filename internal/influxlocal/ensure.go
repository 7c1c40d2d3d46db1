package influxlocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	// Version is the InfluxDB release this package builds and runs.
	Version = "1.8.10"
	module  = "github.com/influxdata/influxdb/cmd/influxd@v" + Version
)

// BinaryPath returns where the influxd binary is expected: $SEMKO_INFLUXD if
// set, else <user cache dir>/semko/influxdb-1.8.10/bin/influxd.
func BinaryPath() string {
	if p := os.Getenv("SEMKO_INFLUXD"); p != "" {
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		// No $HOME and no XDG_CACHE_HOME (a bare CI container): fall back to
		// the temp dir so we still have a stable place to cache the build.
		cache = os.TempDir()
	}
	return filepath.Join(cache, "semko", "influxdb-"+Version, "bin", "influxd")
}

// Ensure returns the path of an influxd binary, building it with `go install`
// when it is missing. A path given by $SEMKO_INFLUXD is never built: it must
// exist. Concurrent callers, in this process or others (go test runs packages
// in parallel), build it once.
func Ensure(ctx context.Context, log *slog.Logger) (string, error) {
	if log == nil {
		log = slog.Default()
	}
	path := BinaryPath()
	if p := os.Getenv("SEMKO_INFLUXD"); p != "" {
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("ensure influxd: SEMKO_INFLUXD: %w", err)
		}
		return p, nil
	}
	if err := ensureAt(ctx, log, path); err != nil {
		return "", fmt.Errorf("ensure influxd: %w", err)
	}
	return path, nil
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// ensureAt builds influxd into path unless it is already there.
func ensureAt(ctx context.Context, log *slog.Logger, path string) error {
	if checkExecutable(path) == nil {
		return nil // fast path: no lock needed once built
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	unlock, err := lockFile(ctx, log, filepath.Join(dir, ".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	// Another process may have finished the build while we waited.
	if checkExecutable(path) == nil {
		return nil
	}
	return build(ctx, log, path)
}

// lockFile takes an exclusive flock on path. It polls with LOCK_NB instead of
// blocking so that ctx can cancel the wait.
func lockFile(ctx context.Context, log *slog.Logger, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			// Closing the file releases the lock.
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !logged {
			log.Info("waiting for another process to build influxd", "lock", path)
			logged = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for lock %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// build runs `go install` into a temporary GOBIN beside path and renames the
// result into place, so nobody ever sees a half-written binary.
func build(ctx context.Context, log *slog.Logger, path string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("go toolchain not found in PATH (needed to build influxd, or set SEMKO_INFLUXD): %w", err)
	}
	tmpBin, err := os.MkdirTemp(filepath.Dir(path), ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmpBin)
	// Run from an empty directory outside any module: our go.mod (or a
	// go.work above the caller) must not influence the build.
	workDir, err := os.MkdirTemp("", "influxd-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(workDir)

	log.Info("building influxd from the Go module proxy (first run only, may take a few minutes)",
		"module", module, "dest", path)
	start := time.Now()
	cmd := exec.CommandContext(ctx, goBin, "install", module)
	cmd.Dir = workDir
	cmd.Env = append(os.Environ(), "GOBIN="+tmpBin, "GOFLAGS=-mod=mod", "GOWORK=off")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go install %s: %w\n%s", module, err, tail(out.String(), 40))
	}
	if err := os.Rename(filepath.Join(tmpBin, "influxd"), path); err != nil {
		return fmt.Errorf("install influxd: %w", err)
	}
	log.Info("built influxd", "path", path, "took", time.Since(start).Round(time.Second))
	return nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
