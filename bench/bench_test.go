package bench

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/semko/semko/firmware-sim/loadgen"
)

func TestSeriesPerDevice(t *testing.T) {
	tests := []struct {
		name   string
		old    bool
		years  int
		votes  float64
		lo, hi float64
	}{
		{"new, no votes", false, 1, 0, 0, 0},
		{"old, one vote", true, 1, 1, 0.99, 1.01},
		// A year saturates valid combinations (300); the old design adds
		// most of them again for repeats, and the defaults' invalid series.
		{"new, a year", false, 1, 7000, 299, 301},
		{"old, a year", true, 1, 7000, 500, 600},
		// Three years: 2 of 10 operators replaced a year, 14 in all.
		{"new, three years", false, 3, 7000, 419, 421},
		{"old, three years", true, 3, 7000, 700, 841},
		{"old, bound", true, 3, 1e9, 840, 841},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := seriesPerDevice(tt.old, 10, 30, tt.years, tt.votes)
			if got < tt.lo || got > tt.hi || math.IsNaN(got) {
				t.Errorf("seriesPerDevice(%v, 10, 30, %d, %v) = %v, want %v..%v", tt.old, tt.years, tt.votes, got, tt.lo, tt.hi)
			}
		})
	}
}

func TestPrintTable(t *testing.T) {
	var b bytes.Buffer
	err := PrintTable(&b, "test machine", true, []Result{
		{Target: "1 ingest", Figure: "10 votes/s", Goal: ">= 27000", Met: false, Note: "n"},
		{Target: "2 latency", Figure: "p99 1 ms", Goal: "< 1 s", Met: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"machine: test machine", "mode: quick", "TARGET", "1 ingest", "10 votes/s", " no ", " yes "} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if m := Machine(); !strings.Contains(m, "cores") {
		t.Errorf("Machine() = %q", m)
	}
}

// TestMain doubles as the generator child the connection targets start.
func TestMain(m *testing.M) {
	if path := os.Getenv("BENCH_TEST_GENERATOR"); path != "" {
		os.Exit(runChild(path))
	}
	os.Exit(m.Run())
}

func runChild(path string) int {
	opts, err := loadgen.ReadOptions(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f, err := loadgen.New(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	err = loadgen.Serve(ctx, f, os.Stdin, os.Stdout)
	cancel()
	<-done
	if err != nil {
		return 1
	}
	return 0
}

// TestRunQuick runs three targets small, against a real InfluxDB: the
// latency probe (in-process generator), the reconnect storm (generator in
// a child process, backend restarted) and the cardinality sample.
func TestRunQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts InfluxDB and a backend")
	}
	dir := t.TempDir()
	t.Setenv("BENCH_TEST_GENERATOR", dir+"/t4/generator.json")
	results, err := Run(t.Context(), Config{
		Quick: true, Dir: dir, GeneratorArgv: []string{os.Args[0]}, Targets: []string{"2", "4", "6"}, Scale: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 3 {
		t.Fatalf("%d results, want 3", len(results))
	}
	for _, r := range results {
		if r.Figure == "failed" || r.Figure == "" {
			t.Errorf("%s: %s", r.Target, r.Note)
		}
		t.Logf("%s: %s (goal %s, met %v) %s", r.Target, r.Figure, r.Goal, r.Met, r.Note)
	}
}
