// Package natslocal builds nats-server from the Go module proxy and runs a
// three-node NATS cluster with JetStream and MQTT on free loopback ports, as
// child processes that tests can SIGKILL, stop and start again one node at a
// time. It is internal/influxlocal's counterpart for the clustered front
// door (issue 14): real processes, cleanup by PID only.
package natslocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

const (
	// Version is the nats-server release this package builds and runs. The
	// delivery guarantee in deploy/cluster/README.md was measured on it:
	// re-measure before changing it.
	Version = "2.15.3"
	module  = "github.com/nats-io/nats-server/v2@v" + Version
)

// BinaryPath returns where nats-server is expected: $SEMKO_NATS_SERVER if
// set, else <user cache dir>/semko/nats-server-<Version>/bin/nats-server
// (the Makefile's `make nats-server` builds it there).
func BinaryPath() string {
	if p := os.Getenv("SEMKO_NATS_SERVER"); p != "" {
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "semko", "nats-server-"+Version, "bin", "nats-server")
}

// Ensure returns the path of a nats-server binary, building it with `go
// install` when it is missing. A path given by $SEMKO_NATS_SERVER is never
// built. Concurrent callers (go test runs packages in parallel) build once.
func Ensure(ctx context.Context, log *slog.Logger) (string, error) {
	if log == nil {
		log = slog.Default()
	}
	path := BinaryPath()
	if os.Getenv("SEMKO_NATS_SERVER") != "" {
		if err := checkExecutable(path); err != nil {
			return "", fmt.Errorf("ensure nats-server: SEMKO_NATS_SERVER: %w", err)
		}
		return path, nil
	}
	if checkExecutable(path) == nil {
		return path, nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("ensure nats-server: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(dir, ".lock"))
	if err != nil {
		return "", fmt.Errorf("ensure nats-server: %w", err)
	}
	defer unlock()
	if checkExecutable(path) == nil { // built by another process while we waited
		return path, nil
	}
	if err := build(ctx, log, path); err != nil {
		return "", fmt.Errorf("ensure nats-server: %w", err)
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

// lockFile takes an exclusive flock on path, polling so ctx can cancel.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for lock %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// build runs `go install` from an empty directory (our go.mod must not
// influence the server's dependencies) into a temporary GOBIN and renames
// the result into place, so nobody sees a half-written binary.
func build(ctx context.Context, log *slog.Logger, path string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("go toolchain not found (needed to build nats-server, or set SEMKO_NATS_SERVER): %w", err)
	}
	tmpBin, err := os.MkdirTemp(filepath.Dir(path), ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmpBin)
	workDir, err := os.MkdirTemp("", "nats-server-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(workDir)
	log.Info("building nats-server from the Go module proxy (first run only)", "module", module, "dest", path)
	cmd := exec.CommandContext(ctx, goBin, "install", module)
	cmd.Dir = workDir
	cmd.Env = append(os.Environ(), "GOBIN="+tmpBin, "GOFLAGS=-mod=mod", "GOWORK=off")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go install %s: %w\n%s", module, err, out.String())
	}
	if err := os.Rename(filepath.Join(tmpBin, "nats-server"), path); err != nil {
		return fmt.Errorf("install nats-server: %w", err)
	}
	return nil
}
