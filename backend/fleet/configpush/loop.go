package configpush

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/semko/semko/fleet/registry"
)

// RetryAfter is how soon a push that failed (broker unreachable) is tried
// again when no change comes first.
const RetryAfter = 10 * time.Second

// Loop publishes the managed devices' configs at start, after every change
// of the fleet (Kick), and again after a failure. The broker retains them,
// and the Pusher skips what it already published, so a push is cheap to
// repeat.
type Loop struct {
	pub      Publisher
	registry func() *registry.Registry
	log      *slog.Logger
	kick     chan struct{} // cap 1: a new snapshot is waiting to be pushed
	// resend asks the loop to publish every config again, not only
	// changes: set on a new connection to an external broker, which may
	// have lost its retained messages.
	resend atomic.Bool
}

// NewLoop returns a loop that publishes through pub what reg's current
// snapshot desires; log may be nil.
func NewLoop(pub Publisher, reg func() *registry.Registry, log *slog.Logger) *Loop {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Loop{pub: pub, registry: reg, log: log, kick: make(chan struct{}, 1)}
}

// Kick has the loop push the current snapshot. It does not block: a push
// already pending reads the newest snapshot.
func (l *Loop) Kick() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Resend has the loop publish every managed device's config again (for a
// new connection to an external broker). It does not block.
func (l *Loop) Resend() {
	l.resend.Store(true)
	l.Kick()
}

// Run pushes until ctx ends. Start it once MQTT is up.
func (l *Loop) Run(ctx context.Context) error {
	p := NewPusher(l.pub, l.log)
	// The broker may retain configs from an earlier run for devices no
	// longer managed: clear them once.
	var all []string
	for _, d := range l.registry().Devices() {
		all = append(all, d.ID)
	}
	p.Suspect(all)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		if l.resend.Swap(false) {
			p.Forget()
		}
		if _, err := p.Sync(l.registry().Configs()); err != nil {
			l.log.Warn("config push incomplete, retrying", "in", RetryAfter, "err", err)
			retry.Reset(RetryAfter)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-l.kick:
		case <-retry.C:
		}
	}
}
