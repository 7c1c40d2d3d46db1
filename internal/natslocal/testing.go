package natslocal

import (
	"log/slog"
	"testing"
)

// StartForTest starts a fresh three-node cluster in t.TempDir() and stops
// it when the test ends. It builds nats-server first if needed and fails the
// test (never skips) if it cannot. If the test failed, each node's log tail
// is printed.
func StartForTest(t testing.TB, opts Options) *Cluster {
	t.Helper()
	opts.Dir = t.TempDir()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	c, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("natslocal: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.Nodes {
				t.Logf("tail of %s's log %s:\n%s", n.Name, n.LogPath(), n.LogTail(30))
			}
		}
		if err := c.Stop(); err != nil {
			t.Errorf("natslocal: %v", err)
		}
	})
	return c
}
