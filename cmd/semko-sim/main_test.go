package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/firmware-sim/fleet"
)

func TestFleetFileFlag(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	if code := run([]string{"-fleet-file", path, "-seed", "9", "-orgs", "2", "-sites", "1", "-counters", "2", "-log-level", "warn"}); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "secret_hash: sha256$"); n != 4 {
		t.Fatalf("%d hashed devices, want 4:\n%s", n, data)
	}
}

func TestBadFlags(t *testing.T) {
	if code := run([]string{"-log-level", "loud"}); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
}

func TestEdgeClockFlag(t *testing.T) {
	c := edgeClocks{}
	for _, ok := range []string{"kp-0001=6m", "kp-0002=-72h,30s,0s"} {
		if err := c.Set(ok); err != nil {
			t.Fatalf("%s: %v", ok, err)
		}
	}
	if c["kp-0001"].Offset != 6*time.Minute || c["kp-0002"] != (fleet.EdgeClock{Offset: -72 * time.Hour, StepAfter: 30 * time.Second}) {
		t.Fatalf("parsed %v", c)
	}
	for _, bad := range []string{"6m", "kp-1=", "kp-1=6m,1s", "kp-1=x", "kp-1=1m,-1s,0s"} {
		if err := c.Set(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
