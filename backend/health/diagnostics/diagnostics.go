// Package diagnostics watches the fleet's live state and turns what is
// wrong with a unit into alert findings: offline, stuck key, dead panel or
// backlight, silent unit, clock drift, a growing outbox, outdated firmware,
// and a failed or unanswered nightly self-test.
//
// Each check is a gocron job with its own name and schedule (Config). A
// check looks at every installed unit and reconciles: it raises a finding
// for a condition that newly holds and resolves the open one whose
// condition cleared, so a finding is raised once and stays open until the
// unit recovers, is replaced or leaves the fleet. Every finding names the
// unit, its site and counter, the figures behind it and what to do.
package diagnostics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/fleet/live"
	"github.com/semko/semko/fleet/registry"
)

// Errors of the Diagnostics.
var (
	// ErrOptions means New was given options that cannot work.
	ErrOptions = errors.New("invalid diagnostics options")
	// ErrUnknownCheck is returned by CheckNow for a name not in Checks.
	ErrUnknownCheck = errors.New("unknown check")
	// ErrStarted is returned by Run when already running.
	ErrStarted = errors.New("diagnostics already started")
)

// Publisher sends a message to a device; broker.Broker satisfies it.
type Publisher interface {
	Publish(topic string, payload []byte, retain bool, qos byte) error
}

// Options configures New. Devices, Registry and Raiser are required;
// Publisher is required for the self-test.
type Options struct {
	Config Config
	// Devices returns the live state of every unit (ingest.Ingest.Devices).
	Devices func() []live.DeviceState
	// Registry returns the fleet in use (registry.Store.Current): models
	// and the names of counters and sites.
	Registry  func() *registry.Registry
	Raiser    alert.Raiser
	Publisher Publisher
	// Clock drives the schedule and is the "now" of every check. Default
	// the real clock. The live state's receipt times must come from the
	// same clock.
	Clock clockwork.Clock
	// Cluster, when set (a replica of a cluster: backend/elector's
	// Slots.Every), makes one replica run each period: every replica's
	// schedule starts on a multiple of the period and each run first claims
	// its slot. Nil: this process runs every period itself.
	Cluster func(period time.Duration) gocron.Locker
	Logger  *slog.Logger
}

// Diagnostics runs the checks. Checks of different names may run at the
// same time; gocron never overlaps two runs of one check.
type Diagnostics struct {
	opts    Options
	cfg     Config
	log     *slog.Logger
	clock   clockwork.Clock
	started time.Time // a unit heard from never is measured from here

	mu      sync.Mutex
	open    map[string]alert.Finding // by Finding.Key(): what this package raised and has not resolved
	stuck   map[string]*window[[5]uint64]
	backlog map[string]*window[int]
	pending map[string]pendingTest // by device: self-tests sent, not yet judged
	// primed holds the kinds reconciled once since start. The alert
	// manager keeps alerts across restarts while open starts empty, so the
	// first reconcile of a kind resolves it for every unit not firing:
	// an alert whose condition cleared while the backend was down closes.
	primed map[alert.Kind]bool
	sched  gocron.Scheduler
}

// New checks opts. Nothing runs until Run (or CheckNow).
func New(opts Options) (*Diagnostics, error) {
	if opts.Devices == nil || opts.Registry == nil || opts.Raiser == nil {
		return nil, fmt.Errorf("%w: Devices, Registry and Raiser are required", ErrOptions)
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Diagnostics{
		opts:    opts,
		cfg:     opts.Config.withDefaults(),
		log:     opts.Logger,
		clock:   opts.Clock,
		started: opts.Clock.Now(),
		open:    make(map[string]alert.Finding),
		stuck:   make(map[string]*window[[5]uint64]),
		backlog: make(map[string]*window[int]),
		pending: make(map[string]pendingTest),
		primed:  make(map[alert.Kind]bool),
	}, nil
}

// Run schedules every enabled check and runs them until ctx ends; it
// returns once a running check has finished.
func (d *Diagnostics) Run(ctx context.Context) error {
	if err := d.start(); err != nil {
		return err
	}
	<-ctx.Done()
	return d.stop()
}

// start schedules every enabled check; stop ends them.
func (d *Diagnostics) start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sched != nil {
		return ErrStarted
	}
	if d.cfg.Disabled {
		return nil
	}
	s, err := gocron.NewScheduler(
		gocron.WithClock(d.clock),
		gocron.WithLogger(gocronLogger{d.log}),
		gocron.WithGlobalJobOptions(gocron.WithSingletonMode(gocron.LimitModeReschedule)),
	)
	if err != nil {
		return fmt.Errorf("diagnostics scheduler: %w", err)
	}
	for _, name := range Checks {
		def, err := parseSchedule(d.cfg.Schedule[name])
		if err != nil {
			_ = s.Shutdown()
			return fmt.Errorf("%w: schedule %s: %w", ErrConfig, name, err)
		}
		if def == nil {
			continue // "off"
		}
		// Each run gets a context bounded by the check's own work; the
		// scheduler's shutdown waits for a running check to finish.
		if _, err := s.NewJob(def, gocron.NewTask(func() {
			ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
			defer cancel()
			if err := d.CheckNow(ctx, name); err != nil {
				d.log.Warn("diagnostics: check failed", "check", name, "err", err)
			}
		}), append([]gocron.JobOption{gocron.WithName(name)}, d.clusterOptions(d.cfg.Schedule[name])...)...); err != nil {
			_ = s.Shutdown()
			return fmt.Errorf("%w: schedule %s: %w", ErrConfig, name, err)
		}
	}
	s.Start()
	d.sched = s
	return nil
}

// clusterOptions, in a cluster, claim each run's slot first: a duration
// schedule starts on a multiple of its period on every replica, a cron one
// fires on minutes (see Options.Cluster).
func (d *Diagnostics) clusterOptions(spec string) []gocron.JobOption {
	if d.opts.Cluster == nil {
		return nil
	}
	if every, err := time.ParseDuration(strings.TrimSpace(spec)); err == nil {
		return []gocron.JobOption{
			gocron.WithStartAt(gocron.WithStartDateTime(d.clock.Now().Truncate(every).Add(every))),
			gocron.WithDistributedJobLocker(d.opts.Cluster(every)),
		}
	}
	return []gocron.JobOption{gocron.WithDistributedJobLocker(d.opts.Cluster(time.Minute))}
}

// runTimeout bounds one check run: the Raiser and the broker are local,
// so a run that takes longer is stuck on something.
const runTimeout = 2 * time.Minute

// stop ends the schedule, waiting for running checks.
func (d *Diagnostics) stop() error {
	d.mu.Lock()
	s := d.sched
	d.sched = nil
	d.mu.Unlock()
	if s == nil {
		return nil
	}
	if err := s.Shutdown(); err != nil {
		return fmt.Errorf("diagnostics shutdown: %w", err)
	}
	return nil
}

// Jobs lists the scheduled checks with their next run, for tests and the
// log. Empty before Run.
func (d *Diagnostics) Jobs() map[string]time.Time {
	d.mu.Lock()
	s := d.sched
	d.mu.Unlock()
	out := make(map[string]time.Time)
	if s == nil {
		return out
	}
	for _, j := range s.Jobs() {
		next, _ := j.NextRun()
		out[j.Name()] = next
	}
	return out
}

// CheckNow runs one check now, outside the schedule.
func (d *Diagnostics) CheckNow(ctx context.Context, check string) error {
	now := d.clock.Now()
	switch check {
	case CheckOffline:
		return d.reconcile(ctx, d.offline(now), alert.KindOffline)
	case CheckStuckKey:
		return d.reconcile(ctx, d.stuckKeys(now), alert.KindStuckKey)
	case CheckHardware:
		return d.reconcile(ctx, d.hardware(now), alert.KindDeadPanel, alert.KindDeadBacklight)
	case CheckSilent:
		return d.reconcile(ctx, d.silent(now), alert.KindSilentUnit)
	case CheckClockDrift:
		return d.reconcile(ctx, d.clockDrift(now), alert.KindClockDrift)
	case CheckEdgeClock:
		return d.reconcile(ctx, d.edgeClock(now), alert.KindEdgeClock)
	case CheckOutbox:
		return d.reconcile(ctx, d.outbox(now), alert.KindOutboxBacklog)
	case CheckFirmware:
		return d.reconcile(ctx, d.firmware(now), alert.KindOutdatedFirmware)
	case CheckSelfTest:
		return d.sendSelfTests(now)
	case CheckSelfTestResults:
		return d.judgeSelfTests(ctx, now)
	}
	return fmt.Errorf("%w: %q", ErrUnknownCheck, check)
}

// Open returns the findings raised and not resolved, for the API and
// tests.
func (d *Diagnostics) Open() []alert.Finding {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]alert.Finding, 0, len(d.open))
	for _, f := range d.open {
		out = append(out, f)
	}
	return out
}

// reconcile makes the open findings of kinds equal firing: it raises what
// is new and resolves what is open but no longer firing. A finding that
// stays open is not raised again: its alert is already there, and raising
// it on every run would record a point per run.
func (d *Diagnostics) reconcile(ctx context.Context, firing []alert.Finding, kinds ...alert.Kind) error {
	now := make(map[string]alert.Finding, len(firing))
	for _, f := range firing {
		now[f.Key()] = f
	}
	var errs []error
	for _, f := range firing {
		if err := d.raise(ctx, f); err != nil {
			errs = append(errs, err)
		}
	}
	d.mu.Lock()
	var cleared []alert.Finding
	for key, f := range d.open {
		if _, still := now[key]; !still && has(kinds, f.Kind) {
			cleared = append(cleared, f)
		}
	}
	var unprimed []alert.Kind
	for _, k := range kinds {
		if !d.primed[k] {
			unprimed = append(unprimed, k)
		}
	}
	d.mu.Unlock()
	for _, f := range cleared {
		if err := d.resolve(ctx, f.Kind, f.Subject, "condition cleared"); err != nil {
			errs = append(errs, err)
		}
	}
	if len(unprimed) > 0 {
		if err := d.prime(ctx, unprimed, now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// prime resolves kinds for every unit not firing them, once after start.
// The Raiser ignores a Resolve without an open alert.
func (d *Diagnostics) prime(ctx context.Context, kinds []alert.Kind, firing map[string]alert.Finding) error {
	for _, u := range d.units() {
		for _, k := range kinds {
			if _, ok := firing[alert.Finding{Kind: k, Subject: u.subject}.Key()]; ok {
				continue
			}
			if err := d.opts.Raiser.Resolve(ctx, k, u.subject, "condition cleared while the backend was down"); err != nil {
				return fmt.Errorf("resolve %s for %s after start: %w", k, u.Device, err)
			}
		}
	}
	d.mu.Lock()
	for _, k := range kinds {
		d.primed[k] = true
	}
	d.mu.Unlock()
	return nil
}

// raise raises f unless it is open already.
func (d *Diagnostics) raise(ctx context.Context, f alert.Finding) error {
	// Marked open before it is raised, in one step with the check: a run
	// started through the API at the same time as a scheduled one cannot
	// raise it twice, and Open never lags behind the alert manager.
	d.mu.Lock()
	if _, open := d.open[f.Key()]; open {
		d.mu.Unlock()
		return nil
	}
	d.open[f.Key()] = f
	d.mu.Unlock()
	if err := d.opts.Raiser.Raise(ctx, f); err != nil {
		// Not remembered as open: the next run raises it again.
		d.mu.Lock()
		delete(d.open, f.Key())
		d.mu.Unlock()
		return fmt.Errorf("raise %s for %s: %w", f.Kind, f.Subject.Device, err)
	}
	d.log.Warn("diagnostics: finding", "kind", f.Kind, "device", f.Subject.Device, "site", f.Subject.Site,
		"counter", f.Subject.Counter, "message", f.Message, "hint", f.Hint)
	return nil
}

// resolve resolves the open finding of kind for subject, if there is one.
func (d *Diagnostics) resolve(ctx context.Context, kind alert.Kind, subject alert.Subject, reason string) error {
	key := alert.Finding{Kind: kind, Subject: subject}.Key()
	d.mu.Lock()
	_, open := d.open[key]
	d.mu.Unlock()
	if !open {
		return nil
	}
	if err := d.opts.Raiser.Resolve(ctx, kind, subject, reason); err != nil {
		return fmt.Errorf("resolve %s for %s: %w", kind, subject.Device, err)
	}
	d.log.Info("diagnostics: resolved", "kind", kind, "device", subject.Device, "reason", reason)
	d.mu.Lock()
	delete(d.open, key)
	d.mu.Unlock()
	return nil
}

func has(kinds []alert.Kind, k alert.Kind) bool {
	for _, x := range kinds {
		if x == k {
			return true
		}
	}
	return false
}

// gocronLogger adapts slog to gocron's logger.
type gocronLogger struct{ l *slog.Logger }

func (g gocronLogger) Debug(msg string, args ...any) { g.l.Debug("gocron: "+msg, args...) }
func (g gocronLogger) Info(msg string, args ...any)  { g.l.Debug("gocron: "+msg, args...) }
func (g gocronLogger) Warn(msg string, args ...any)  { g.l.Warn("gocron: "+msg, args...) }
func (g gocronLogger) Error(msg string, args ...any) { g.l.Error("gocron: "+msg, args...) }
