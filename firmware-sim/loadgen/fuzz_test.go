package loadgen

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzServe feeds arbitrary command input to the remote protocol: it must
// answer every line it reads with one line, never panic, and never let an
// outbox grow past its limit.
func FuzzServe(f *testing.F) {
	for _, seed := range []string{
		"enqueue-all 3\nstats\nquit\n",
		"enqueue-all -1\n",
		"enqueue-all 99999999999999999999\n",
		"stats\x00\n\n",
		"frobnicate now\r\nenqueue-all 2",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		fl, err := New(Options{Broker: "tcp://127.0.0.1:1", Devices: devices(2), OutboxLimit: 50})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		_ = Serve(t.Context(), fl, strings.NewReader(in), &out)
		if s := fl.Stats(); s.Pending > 100 || s.Enqueued != uint64(s.Pending) {
			t.Fatalf("outboxes hold %d (limit 2 x 50), %d counted as pressed", s.Pending, s.Enqueued)
		}
		if n, max := strings.Count(out.String(), "\n"), strings.Count(in, "\n")+1; n > max {
			t.Fatalf("%d answers to at most %d lines", n, max)
		}
	})
}
