package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
