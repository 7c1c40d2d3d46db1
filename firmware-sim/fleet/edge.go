package fleet

import (
	"context"
	"errors"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"

	"github.com/semko/semko/edge"
	"github.com/semko/semko/protocol"
)

// edgeAgent adapts a real edge.Agent to what a fleet needs.
type edgeAgent struct {
	*edge.Agent
	log *slog.Logger
}

// newEdgeAgent starts nothing: it builds the unit's real edge agent on its
// end of the keypad line, with the fleet's window as its default config
// and no local HTTP endpoint (the fleet activates it directly).
func newEdgeAgent(dev Device, dataDir string, opts Options, log *slog.Logger, line io.ReadWriteCloser) (agent, error) {
	defaults := edge.DefaultConfig()
	defaults.Version = "sim-default"
	defaults.VoteWindowS = int(opts.Window.Seconds())
	defaults.Panel = protocol.Panel{Lang: "bg", Texts: map[string]string{
		"bg": "Моля, оценете обслужването",
		"en": "Please rate our service",
	}}
	cfg := edge.Config{
		Device: dev.ID, Secret: dev.Secret, Broker: opts.Broker,
		DataDir: dataDir, Defaults: defaults, Logger: log, LinkRSSI: linkRSSI(dev.ID),
	}
	if opts.EdgeClocks != nil {
		if c := opts.EdgeClocks(dev); c != (EdgeClock{}) {
			cfg.Now = c.Clock()
			log.Info("edge clock wrong", "offset", c.Offset, "step_after", c.StepAfter, "step_to", c.StepTo)
		}
	}
	a, err := edge.New(cfg, line)
	if err != nil {
		return nil, err
	}
	return edgeAgent{Agent: a, log: log}, nil
}

// Activate treats edge.ErrKeypad as success: the agent documents that the
// window is open and durable even when the ARM frame could not be written,
// so the activation counts.
func (e edgeAgent) Activate(ctx context.Context, act protocol.Activate) error {
	err := e.Agent.Activate(ctx, act)
	if errors.Is(err, edge.ErrKeypad) {
		e.log.Warn("activation open but keypad not armed", "activation", act.ID, "err", err)
		return nil
	}
	return err
}

func (e edgeAgent) Outbox() int     { return e.Stats().Outbox }
func (e edgeAgent) Connected() bool { return e.Stats().Connected }

// linkRSSI simulates a unit's Wi-Fi link: a level fixed by where the unit
// stands (from its id, so a fleet is the same on every run), between -82
// and -48 dBm, wandering a few dBm from one heartbeat to the next.
func linkRSSI(device string) func() int {
	h := fnv.New64a()
	h.Write([]byte(device))
	seed := h.Sum64()
	base := -82 + int(seed%35)
	rng := rand.New(rand.NewPCG(seed, 0x5e3c0))
	var mu sync.Mutex
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return base + rng.IntN(7) - 3
	}
}
