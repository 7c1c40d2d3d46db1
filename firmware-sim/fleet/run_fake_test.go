package fleet

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/semko/semko/firmware-sim/keypad"
	"github.com/semko/semko/protocol"
)

// windowAgent is a stand-in edge agent that judges presses with the same
// rule as the real one (valid when the first press falls inside the open
// window) and remembers what it decided, so the customer logic can be
// checked without a broker. The real agent is exercised in run_test.go.
type windowAgent struct {
	line io.ReadWriteCloser

	mu          sync.Mutex
	activations int
	open        bool
	until       time.Time
	valid       [5]int
	invalid     int
}

func (a *windowAgent) Outbox() int     { return 0 }
func (a *windowAgent) Connected() bool { return true }

func (a *windowAgent) Activate(_ context.Context, act protocol.Activate) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.activations++
	a.open = true
	a.until = time.Now().Add(time.Duration(act.WindowS) * time.Second)
	return nil
}

func (a *windowAgent) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { a.line.Close() })
	defer stop()
	fr := protocol.NewFrameReader(a.line)
	seen := map[uint32]bool{}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if f.Type == protocol.FrameBoot {
			clear(seen)
		}
		if f.Type != protocol.FrameKey {
			continue
		}
		kp, err := protocol.ParseKeyPress(f)
		if err != nil {
			return err
		}
		if !seen[kp.Seq] {
			seen[kp.Seq] = true
			a.mu.Lock()
			if a.open && time.Now().Before(a.until) {
				a.valid[kp.Key-1]++
				a.open = false
			} else {
				a.invalid++
			}
			a.mu.Unlock()
		}
		taken := protocol.Frame{Type: protocol.FrameTaken, Args: []string{strconv.FormatUint(uint64(kp.Seq), 10)}}
		if _, err := a.line.Write(taken.Bytes()); err != nil {
			return err
		}
	}
}

func TestRunCustomersMatchAgentVerdicts(t *testing.T) {
	m := Generate(Spec{Seed: 5, Orgs: 2, SitesPerOrg: 1, CountersPerSite: 2})
	var mu sync.Mutex
	agents := map[string]*windowAgent{}
	opts := Options{
		Broker: "tcp://unused", DataDir: t.TempDir(),
		ServiceInterval: 20 * time.Millisecond, Window: time.Second,
		Participation: 0.7, StrayPresses: 0.3, MaxActivations: 6,
		NewKeypadOptions: func(Device) keypad.Options { return keypad.Options{ResendEvery: 50 * time.Millisecond} },
		newAgent: func(dev Device, _ string, _ Options, _ *slog.Logger, line io.ReadWriteCloser) (agent, error) {
			a := &windowAgent{line: line}
			mu.Lock()
			agents[dev.ID] = a
			mu.Unlock()
			return a, nil
		},
	}
	tally, err := Run(context.Background(), m, opts)
	if err != nil {
		t.Fatal(err)
	}
	total := tally.Total()
	if total.Activations != 4*6 || total.Unsure != 0 || total.Votes == 0 || total.Invalid == 0 {
		t.Fatalf("total = %+v", total)
	}
	for id, a := range agents {
		got := tally.Device(id)
		a.mu.Lock()
		want := Counts{Activations: a.activations, Scores: a.valid, Invalid: a.invalid}
		a.mu.Unlock()
		for _, n := range want.Scores {
			want.Votes += n
		}
		if got != want {
			t.Errorf("%s: tally %+v, agent saw %+v", id, got, want)
		}
	}

	// Same seed, same customers: the counts do not depend on timing.
	again, err := Run(context.Background(), m, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Total() != total {
		t.Fatalf("second run %+v, first %+v", again.Total(), total)
	}
	snap := tally.Snapshot()
	if snap.Units != 4 || snap.Connected != 4 || snap.ActivationsLastMinute != 24 {
		t.Fatalf("snapshot = %+v", snap)
	}
}

func TestRunOptionsAndCancel(t *testing.T) {
	m := Generate(Spec{Seed: 1})
	if _, err := Run(context.Background(), m, Options{}); !errors.Is(err, ErrOptions) {
		t.Fatalf("Run with no options = %v, want ErrOptions", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var started sync.Once
	opts := Options{
		Broker: "tcp://unused", DataDir: t.TempDir(), ServiceInterval: 10 * time.Millisecond,
		Window: time.Second, Participation: 1,
		newAgent: func(_ Device, _ string, _ Options, _ *slog.Logger, line io.ReadWriteCloser) (agent, error) {
			return &cancelOnActivate{windowAgent: windowAgent{line: line}, once: &started, cancel: cancel}, nil
		},
	}
	tally, err := Run(ctx, m, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := tally.Total(); got.Activations < 1 || got.Unsure != 0 {
		t.Fatalf("after cancel: %+v", got)
	}
}

type cancelOnActivate struct {
	windowAgent
	once   *sync.Once
	cancel context.CancelFunc
}

func (a *cancelOnActivate) Activate(ctx context.Context, act protocol.Activate) error {
	err := a.windowAgent.Activate(ctx, act)
	a.once.Do(a.cancel)
	return err
}
