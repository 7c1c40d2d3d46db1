package faults

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// bin holds the paths of the binaries built once for the whole test binary:
// the fault tests kill real processes, so they need real executables.
var bin struct {
	semko, edge string
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// Every test here skips itself in -short mode; nothing to build.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "semko-faults-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	code := 1
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles cmd/semko and cmd/semko-edge into dir. They are built
// without -race: the processes are the system under test, not the test, and
// the shared machine has two cores.
func build(dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		// go test puts its own go on PATH; this covers a stripped PATH.
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	cmd := exec.Command(goBin, "build", "-o", dir, "./cmd/semko", "./cmd/semko-edge")
	cmd.Dir = ".." // the module root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build binaries: %w\n%s", err, out)
	}
	bin.semko = filepath.Join(dir, "semko")
	bin.edge = filepath.Join(dir, "semko-edge")
	return nil
}
