package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// Part is one long-running piece of the backend. Run serves until ctx
// ends, then releases what the part holds and returns. An error returned
// before ctx ends is a failure: the supervisor stops every other part and
// Run of the App returns that error.
type Part interface {
	Run(ctx context.Context) error
}

// starter is a Part the next parts must wait for (a listener): Run closes
// Started's channel once it serves.
type starter interface {
	Started() <-chan struct{}
}

// closer is a Part that holds something from the moment it is built (a
// file, a database): Close releases it when Run is never called.
type closer interface {
	Close() error
}

// PartFunc makes a function a Part.
type PartFunc func(ctx context.Context) error

func (f PartFunc) Run(ctx context.Context) error { return f(ctx) }

// supervisor starts its parts in the order they were added (each after
// those it depends on) and stops them in the reverse order, once: a part's
// context ends only after every part added after it has returned.
type supervisor struct {
	log   *slog.Logger
	names []string
	parts []Part
	once  sync.Once // guards the single run or release
}

func (s *supervisor) add(name string, p Part) {
	s.names = append(s.names, name)
	s.parts = append(s.parts, p)
}

// run starts the parts and calls up once all have started. It returns when
// ctx ends or a part fails, after stopping every started part in reverse
// order; the error joins the failure and what parts reported as they
// stopped.
func (s *supervisor) run(ctx context.Context, up func()) error {
	ran := false
	var err error
	s.once.Do(func() { ran = true; err = s.runOnce(ctx, up) })
	if !ran {
		return errors.New("backend: already run or closed")
	}
	return err
}

type running struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done closes
}

func (s *supervisor) runOnce(ctx context.Context, up func()) error {
	failed := make(chan struct{})
	var failOnce sync.Once
	var failure error
	fail := func(err error) {
		failOnce.Do(func() { failure = err; close(failed) })
	}
	var started []*running
	startAll := func() bool {
		for i, p := range s.parts {
			// A part's context is not the caller's: it ends only when the
			// supervisor stops the part, in its turn.
			pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
			r := &running{name: s.names[i], cancel: cancel, done: make(chan struct{})}
			started = append(started, r)
			go func() {
				defer close(r.done)
				r.err = p.Run(pctx)
				if r.err != nil && pctx.Err() == nil {
					fail(fmt.Errorf("%s: %w", r.name, r.err))
				}
			}()
			if st, ok := p.(starter); ok {
				select {
				case <-st.Started():
				case <-r.done: // returned before serving: failed, or had nothing to do
				case <-ctx.Done():
					return false
				}
			}
			select {
			case <-failed:
				return false
			default:
			}
		}
		return true
	}
	if startAll() {
		s.log.Info("parts started", "parts", s.names)
		up()
		select {
		case <-ctx.Done():
		case <-failed:
		}
	}
	s.log.Info("backend stopping")
	var errs []error
	for i := len(started) - 1; i >= 0; i-- {
		r := started[i]
		r.cancel()
		<-r.done
		if r.err != nil && !errors.Is(r.err, context.Canceled) {
			s.log.Warn("part stopped with an error", "part", r.name, "err", r.err)
			if failure == nil || !errors.Is(failure, r.err) {
				errs = append(errs, fmt.Errorf("%s: %w", r.name, r.err))
			}
		} else {
			s.log.Debug("part stopped", "part", r.name)
		}
	}
	s.log.Info("backend stopped")
	return errors.Join(append([]error{failure}, errs...)...)
}

// release closes, in reverse order, what the parts hold when the backend
// is never run (or New failed half-way).
func (s *supervisor) release() {
	s.once.Do(func() {
		for i := len(s.parts) - 1; i >= 0; i-- {
			if c, ok := s.parts[i].(closer); ok {
				if err := c.Close(); err != nil {
					s.log.Warn("part release", "part", s.names[i], "err", err)
				}
			}
		}
	})
}

// resource is a Part that only holds something open while the backend
// runs and closes it when stopped (the spool, the fleet database).
type resource struct{ close func() error }

func (r resource) Run(ctx context.Context) error {
	<-ctx.Done()
	return r.close()
}

func (r resource) Close() error { return r.close() }
