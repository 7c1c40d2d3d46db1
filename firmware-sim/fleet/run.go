package fleet

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/semko/semko/firmware-sim/keypad"
	"github.com/semko/semko/protocol"
)

// Errors returned by Run.
var (
	// ErrOptions means Options are unusable; nothing was started.
	ErrOptions = errors.New("invalid fleet options")
	// ErrNotDrained means some edge outbox still held messages when the
	// drain timeout passed: the backend may not have everything yet.
	ErrNotDrained = errors.New("edge outboxes not drained")
)

// Options configure a fleet run.
type Options struct {
	Broker  string // "tcp://127.0.0.1:1883"
	DataDir string // each unit's edge data lives in DataDir/<device>
	// ServiceInterval is the mean time between the end of one service and
	// the end of the next at each counter (exponentially distributed).
	ServiceInterval time.Duration
	// Window is the vote window of each activation; whole seconds, at
	// least one (rounded up).
	Window time.Duration
	// Participation is the share of activations that get a press (0..1).
	Participation float64
	// StrayPresses is the share of activations followed, once their window
	// has surely closed, by a press nobody asked for (0..1).
	StrayPresses float64
	// MaxActivations per counter; 0 means until ctx is done.
	MaxActivations int
	// DrainTimeout bounds the wait for the edge outboxes to empty at the
	// end; 0 means 30 s.
	DrainTimeout time.Duration
	Logger       *slog.Logger
	// NewKeypadOptions, when set, gives each unit's keypad its options
	// (fault injection). FW, Serial and Model default to the device's.
	// Presses a fault makes on its own (a stuck key) are not in the Tally,
	// and presses lost to a reboot count as Unsure.
	NewKeypadOptions func(dev Device) keypad.Options
	// EdgeClocks, when set, gives each unit's edge a wrong wall clock
	// (EdgeClock's zero value is a right one).
	EdgeClocks func(dev Device) EdgeClock

	// newAgent replaces the real edge agent in this package's tests.
	newAgent newAgentFunc
}

// agent is what a fleet needs of an edge agent.
type agent interface {
	Run(ctx context.Context) error
	Activate(ctx context.Context, act protocol.Activate) error
	Outbox() int
	Connected() bool
}

type newAgentFunc func(dev Device, dataDir string, opts Options, log *slog.Logger, line io.ReadWriteCloser) (agent, error)

// unit is one counter's keypad with its edge agent.
type unit struct {
	dev     Device
	counter Counter
	kp      *keypad.Keypad
	agent   agent
	log     *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	switch {
	case o.Broker == "":
		return o, fmt.Errorf("%w: broker missing", ErrOptions)
	case o.DataDir == "":
		return o, fmt.Errorf("%w: data dir missing", ErrOptions)
	case o.ServiceInterval <= 0:
		return o, fmt.Errorf("%w: service interval %v not positive", ErrOptions, o.ServiceInterval)
	case o.Window <= 0 || o.Window > time.Hour:
		return o, fmt.Errorf("%w: window %v not in 1s..1h", ErrOptions, o.Window)
	case o.Participation < 0 || o.Participation > 1 || o.StrayPresses < 0 || o.StrayPresses > 1:
		return o, fmt.Errorf("%w: participation and stray presses are shares in 0..1", ErrOptions)
	case o.MaxActivations < 0:
		return o, fmt.Errorf("%w: max activations negative", ErrOptions)
	}
	o.Window = time.Duration(math.Ceil(o.Window.Seconds())) * time.Second
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.newAgent == nil {
		o.newAgent = newEdgeAgent
	}
	return o, nil
}

// Run runs the fleet: for every device a simulated keypad and a real edge
// agent joined by a net.Pipe, and for every counter a stream of customers.
// It returns when every counter has had MaxActivations (or ctx is done),
// the last windows have closed (unless ctx is done) and every edge outbox
// is empty (or DrainTimeout passed: ErrNotDrained), after stopping every
// agent and keypad. The Tally is returned even with an error once units
// have started; read it while running through the tally argument of
// RunWithTally.
func Run(ctx context.Context, m *Model, opts Options) (*Tally, error) {
	t := NewTally(m)
	return t, RunWithTally(ctx, m, opts, t)
}

// NewTally returns an empty tally for a run of m.
func NewTally(m *Model) *Tally { return newTally(m, time.Now) }

// RunWithTally is Run counting into t, which the caller can read (for
// example Snapshot for a status line) while the run goes on.
func RunWithTally(ctx context.Context, m *Model, opts Options, t *Tally) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	log := opts.Logger

	// Units run until the customers are done and the outboxes drained, not
	// until ctx is done: an interrupted run still delivers what it counted.
	unitCtx, stopUnits := context.WithCancel(context.WithoutCancel(ctx))
	defer stopUnits()
	var unitWG sync.WaitGroup
	var errMu sync.Mutex
	var unitErrs []error
	fail := func(err error) {
		errMu.Lock()
		unitErrs = append(unitErrs, err)
		errMu.Unlock()
	}

	counters := map[string]Counter{}
	for _, c := range m.Counters() {
		counters[c.Device] = c
	}
	units := make([]*unit, 0, len(m.Devices))
	for _, dev := range m.Devices {
		u, err := startUnit(unitCtx, &unitWG, dev, counters[dev.ID], opts, fail)
		if err != nil {
			stopUnits()
			unitWG.Wait()
			return err
		}
		units = append(units, u)
	}
	t.mu.Lock()
	t.units = func() (n, connected int) {
		for _, u := range units {
			if u.agent.Connected() {
				connected++
			}
		}
		return len(units), connected
	}
	t.mu.Unlock()
	log.Info("fleet started", "units", len(units), "broker", opts.Broker)

	runID := strconv.FormatInt(time.Now().UnixMilli(), 36)
	ix := newIndex(m)
	var custWG sync.WaitGroup
	for _, u := range units {
		custWG.Add(1)
		go func() {
			defer custWG.Done()
			c := customers{m: m, ix: ix, u: u, opts: opts, t: t, runID: runID}
			c.serve(ctx, unitCtx)
		}()
	}
	custWG.Wait()

	drainErr := drain(ctx, units, opts.DrainTimeout)
	stopUnits()
	unitWG.Wait()
	errMu.Lock()
	defer errMu.Unlock()
	log.Info("fleet stopped", "total", t.Total())
	return errors.Join(append(unitErrs, drainErr)...)
}

func startUnit(ctx context.Context, wg *sync.WaitGroup, dev Device, counter Counter, opts Options, fail func(error)) (*unit, error) {
	log := opts.Logger.With("device", dev.ID)
	kpEnd, edgeEnd := net.Pipe()
	var kopts keypad.Options
	if opts.NewKeypadOptions != nil {
		kopts = opts.NewKeypadOptions(dev)
	}
	if kopts.FW == "" {
		kopts.FW = dev.FW
	}
	if kopts.Serial == "" {
		kopts.Serial = dev.Serial
	}
	if kopts.Model == "" {
		kopts.Model = dev.Model
	}
	if kopts.Logger == nil {
		kopts.Logger = log
	}
	kp := keypad.New(kpEnd, kopts)
	ag, err := opts.newAgent(dev, filepath.Join(opts.DataDir, dev.ID), opts, log, edgeEnd)
	if err != nil {
		kpEnd.Close()
		edgeEnd.Close()
		return nil, fmt.Errorf("start edge for %s: %w", dev.ID, err)
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := kp.Run(ctx); err != nil {
			fail(fmt.Errorf("keypad %s: %w", dev.ID, err))
		}
	}()
	go func() {
		defer wg.Done()
		if err := ag.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			fail(fmt.Errorf("edge %s: %w", dev.ID, err))
		}
	}()
	return &unit{dev: dev, counter: counter, kp: kp, agent: ag, log: log}, nil
}

// drain waits until every outbox is empty or timeout passes.
func drain(ctx context.Context, units []*unit, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		pending, waiting := 0, 0
		for _, u := range units {
			if n := u.agent.Outbox(); n > 0 {
				pending += n
				waiting++
			}
		}
		if pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %d messages in %d outboxes after %v", ErrNotDrained, pending, waiting, timeout)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			// An interrupted run still gets its drain timeout: the
			// deadline above bounds it.
			select {
			case <-tick.C:
			case <-time.After(time.Until(deadline)):
			}
		}
	}
}

// customers is the stream of customers at one counter.
type customers struct {
	m     *Model
	ix    *index
	u     *unit
	opts  Options
	t     *Tally
	runID string
}

// visit is everything random about one customer, drawn up front in a fixed
// order so the sequence of visits depends on the seed only, never on how
// earlier presses turned out.
type visit struct {
	gap      time.Duration // since the previous customer finished
	operator string
	service  Service
	svcIndex int // position in Model.Services, for the ticket letter
	serviceS int
	votes    bool
	key      int
	delay    float64 // of the window, before the press
	stray    bool
	strayKey int
}

func (c *customers) draw(rng *rand.Rand) visit {
	site := c.ix.sites[c.u.counter.Site]
	v := visit{gap: time.Duration(rng.ExpFloat64() * float64(c.opts.ServiceInterval))}
	v.operator = c.u.counter.Operator
	if p := rng.Float64(); p >= 0.8 && site != nil && len(site.Operators) > 0 {
		v.operator = site.Operators[rng.IntN(len(site.Operators))]
	}
	svc := c.ix.services[c.u.counter.Service]
	if p := rng.Float64(); p >= 0.7 {
		svc = rng.IntN(len(c.m.Services))
	}
	v.service = c.m.Services[svc]
	v.svcIndex = svc
	v.serviceS = int(v.service.Typical.Seconds() * (0.4 + 1.2*rng.Float64()))
	v.votes = rng.Float64() < c.opts.Participation
	mix := goodMix
	if op := c.ix.operators[v.operator]; op != nil {
		mix = op.Mix
	}
	v.key = pick(rng, mix)
	v.delay = 0.05 + 0.35*rng.Float64()
	v.stray = rng.Float64() < c.opts.StrayPresses
	v.strayKey = 1 + rng.IntN(5)
	return v
}

func pick(rng *rand.Rand, mix [5]float64) int {
	p := rng.Float64()
	for i, w := range mix {
		if p < w {
			return i + 1
		}
		p -= w
	}
	return 5
}

// serve runs customers until MaxActivations or ctx is done. Calls already
// begun (an activation, a press) finish under work, the units' context, so
// the tally never misses what the edge may have stored.
func (c *customers) serve(ctx, work context.Context) {
	h := fnv.New64a()
	h.Write([]byte(c.u.counter.ID + "/" + c.u.dev.ID))
	rng := rand.New(rand.NewPCG(uint64(c.m.Spec.Seed), h.Sum64()))
	windowS := int(c.opts.Window / time.Second)
	margin := max(250*time.Millisecond, c.opts.Window/10)

	var lastClose time.Time // when the last window surely closed
	for n := 1; c.opts.MaxActivations == 0 || n <= c.opts.MaxActivations; n++ {
		v := c.draw(rng)
		if !sleep(ctx, v.gap) {
			return
		}
		act := protocol.Activate{
			V: protocol.Version, ID: fmt.Sprintf("%s-%s-%d", c.u.dev.ID, c.runID, n),
			Time:    time.Now().UTC(),
			Ticket:  fmt.Sprintf("%c-%03d", 'A'+v.svcIndex%26, n%1000),
			Service: v.service.ID, Operator: v.operator, ServiceS: v.serviceS, WindowS: windowS,
		}
		opened := time.Now()
		actx, cancel := context.WithTimeout(work, c.opts.Window+10*time.Second)
		err := c.u.agent.Activate(actx, act)
		cancel()
		if err != nil {
			c.u.log.Warn("activation failed", "id", act.ID, "err", err)
			c.t.unsure(c.u.dev.ID)
			continue
		}
		c.t.activation(c.u.dev.ID)
		lastClose = time.Now().Add(c.opts.Window + margin)

		if v.votes && sleep(ctx, time.Duration(v.delay*float64(c.opts.Window))) {
			// Taken before opened+Window means the edge read it inside the
			// window, which opened no earlier than opened.
			pctx, cancel := context.WithDeadline(work, opened.Add(c.opts.Window))
			err := c.u.kp.Press(pctx, v.key)
			cancel()
			switch {
			case err == nil:
				c.t.vote(c.u.dev.ID, v.key)
			case errors.Is(err, keypad.ErrSilent):
				// Never reached the wire: nothing to count.
			default:
				c.u.log.Warn("press not taken inside the window", "activation", act.ID, "err", err)
				c.t.unsure(c.u.dev.ID)
			}
		}
		if v.stray && sleep(ctx, time.Until(lastClose)) {
			pctx, cancel := context.WithTimeout(work, 10*time.Second)
			err := c.u.kp.Press(pctx, v.strayKey)
			cancel()
			switch {
			case err == nil:
				c.t.invalid(c.u.dev.ID)
			case errors.Is(err, keypad.ErrSilent):
			default:
				c.u.log.Warn("stray press not taken", "err", err)
				c.t.unsure(c.u.dev.ID)
			}
		}
	}
	// Let the last window close on its own, so its closing record is in
	// the outbox before the drain.
	sleep(ctx, time.Until(lastClose))
}

// index finds a model's sites, operators and services by id without a
// linear search per customer.
type index struct {
	sites     map[string]*Site
	operators map[string]*Operator
	services  map[string]int // id -> position in Model.Services
}

func newIndex(m *Model) *index {
	ix := &index{sites: map[string]*Site{}, operators: map[string]*Operator{}, services: map[string]int{}}
	for o := range m.Orgs {
		for s := range m.Orgs[o].Sites {
			site := &m.Orgs[o].Sites[s]
			ix.sites[site.ID] = site
		}
	}
	for i := range m.Operators {
		ix.operators[m.Operators[i].ID] = &m.Operators[i]
	}
	for i, s := range m.Services {
		ix.services[s.ID] = i
	}
	return ix
}

// sleep waits d; false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
