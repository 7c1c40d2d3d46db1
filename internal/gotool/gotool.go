// Package gotool builds a Go program from the module proxy, once, into the
// user's cache, and hands out its path. The test harnesses use it for the
// real servers they run (InfluxDB 1.8.10, nats-server), so a fresh machine
// needs nothing but Go: the first test builds them, every later one reuses
// the binary.
package gotool

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

// Binary is one program built with `go install Module`.
type Binary struct {
	Name   string // the installed file's name, e.g. "influxd"
	Module string // what to install, "path@version"
	Dir    string // its folder under <user cache>/semko/, e.g. "influxdb-1.8.10"
	// EnvVar names a variable that, when set, gives the path of a binary
	// to use as it is: it is never built.
	EnvVar string
}

// Path returns where the binary is expected: $EnvVar if set, else
// <user cache dir>/semko/<Dir>/bin/<Name>.
func (b Binary) Path() string {
	if p := os.Getenv(b.EnvVar); b.EnvVar != "" && p != "" {
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		// No $HOME and no XDG_CACHE_HOME (a bare CI container): the temp
		// dir is still a stable place to cache the build.
		cache = os.TempDir()
	}
	return filepath.Join(cache, "semko", b.Dir, "bin", b.Name)
}

// Ensure returns the binary's path, building it when it is missing.
// Concurrent callers, in this process or others (go test runs packages in
// parallel), build it once.
func (b Binary) Ensure(ctx context.Context, log *slog.Logger) (string, error) {
	if log == nil {
		log = slog.Default()
	}
	path := b.Path()
	if b.EnvVar != "" && os.Getenv(b.EnvVar) != "" {
		if err := checkExecutable(path); err != nil {
			return "", fmt.Errorf("ensure %s: %s: %w", b.Name, b.EnvVar, err)
		}
		return path, nil
	}
	if err := b.EnsureAt(ctx, log, path); err != nil {
		return "", fmt.Errorf("ensure %s: %w", b.Name, err)
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

// EnsureAt builds the binary into path unless it is already there (Ensure
// with the path chosen by the caller: tests build into a fresh folder).
func (b Binary) EnsureAt(ctx context.Context, log *slog.Logger, path string) error {
	if checkExecutable(path) == nil {
		return nil // fast path: no lock needed once built
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	unlock, err := lockFile(ctx, log, filepath.Join(dir, ".lock"), b.Name)
	if err != nil {
		return err
	}
	defer unlock()
	// Another process may have finished the build while we waited.
	if checkExecutable(path) == nil {
		return nil
	}
	return b.build(ctx, log, path)
}

// lockFile takes an exclusive flock on path. It polls with LOCK_NB instead
// of blocking so that ctx can cancel the wait.
func lockFile(ctx context.Context, log *slog.Logger, path, name string) (unlock func(), err error) {
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
			log.Info("waiting for another process to build "+name, "lock", path)
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

// build runs `go install` into a temporary GOBIN beside path and renames
// the result into place, so nobody ever sees a half-written binary.
func (b Binary) build(ctx context.Context, log *slog.Logger, path string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		hint := ""
		if b.EnvVar != "" {
			hint = ", or set " + b.EnvVar
		}
		return fmt.Errorf("go toolchain not found in PATH (needed to build %s%s): %w", b.Name, hint, err)
	}
	tmpBin, err := os.MkdirTemp(filepath.Dir(path), ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmpBin)
	// Run from an empty directory outside any module: our go.mod (or a
	// go.work above the caller) must not influence the build.
	workDir, err := os.MkdirTemp("", b.Name+"-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(workDir)

	log.Info("building "+b.Name+" from the Go module proxy (first run only, may take a few minutes)",
		"module", b.Module, "dest", path)
	start := time.Now()
	cmd := exec.CommandContext(ctx, goBin, "install", b.Module)
	cmd.Dir = workDir
	cmd.Env = append(os.Environ(), "GOBIN="+tmpBin, "GOFLAGS=-mod=mod", "GOWORK=off")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go install %s: %w\n%s", b.Module, err, Tail(out.String(), 40))
	}
	if err := os.Rename(filepath.Join(tmpBin, b.Name), path); err != nil {
		return fmt.Errorf("install %s: %w", b.Name, err)
	}
	log.Info("built "+b.Name, "path", path, "took", time.Since(start).Round(time.Second))
	return nil
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
