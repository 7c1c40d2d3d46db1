package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLoadFileReadsReconnectPolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edge.yaml")
	yml := "device: kp-0001\nbroker: tcp://10.0.0.1:1883\nreconnect_min: 10s\nreconnect_max: 30s\n"
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	var fc fileConfig
	if err := loadFile(path, &fc); err != nil {
		t.Fatal(err)
	}
	if fc.ReconnectMin != 10*time.Second || fc.ReconnectMax != 30*time.Second {
		t.Errorf("reconnect policy %v / %v, want 10s / 30s", fc.ReconnectMin, fc.ReconnectMax)
	}
	if err := os.WriteFile(path, []byte("reconnect_mn: 10s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := loadFile(path, &fc); err == nil {
		t.Error("a misspelt key was accepted")
	}
}
