// Package lifecycle reminds technical support of keypads whose warranty
// ends or whose planned replacement comes near. A daily job computes, for
// every installed keypad, its warranty end and replacement date (install
// date plus the durations of its model) and raises one finding per site and
// kind listing the keypads due there, so a technician replaces all of a
// site's keypads in one visit. A reminder is raised each time a keypad
// enters a lead time (by default 90, 30 and 7 days before the date); a
// keypad past its replacement date stays listed until it is replaced (the
// registry puts a new device at its counter), and the site's finding
// resolves once nothing there is due.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/fleet/registry"
)

// Errors of the package.
var (
	// ErrConfig means the configuration cannot work.
	ErrConfig = errors.New("invalid lifecycle config")
	// ErrOptions means New was given options that cannot work.
	ErrOptions = errors.New("invalid lifecycle options")
	// ErrStarted is returned by Run when already running.
	ErrStarted = errors.New("lifecycle job already started")
)

// JobName is the scheduled job's name.
const JobName = "lifecycle"

// Defaults.
const (
	DefaultWarranty    = 365 * 24 * time.Hour     // one year after installation
	DefaultServiceLife = 3 * 365 * 24 * time.Hour // replaced after three years of service
	DefaultSchedule    = "0 6 * * *"              // daily, 06:00
)

// DefaultLeadDays are the reminders' lead times, in days before the date.
var DefaultLeadDays = []int{90, 30, 7}

// Life is what a model is planned to last. Zero values take the defaults.
type Life struct {
	Warranty    time.Duration `yaml:"warranty"`
	ServiceLife time.Duration `yaml:"service_life"`
}

// Config is the `lifecycle:` section of the backend configuration.
type Config struct {
	Disabled bool `yaml:"disabled"`
	// Schedule is a five-field cron spec, in Location; default daily at 06:00.
	Schedule string `yaml:"schedule"`
	// Default applies to models not listed in Models.
	Default Life            `yaml:"default"`
	Models  map[string]Life `yaml:"models"`
	// LeadDays are how many days before a date reminders go out.
	LeadDays []int `yaml:"lead_days"`
	// RunAtStart runs the job once when the backend starts too, besides
	// the schedule (make run uses it; in production the next 06:00 is soon
	// enough for reminders counted in days).
	RunAtStart bool `yaml:"run_at_start"`
}

func (c Config) withDefaults() Config {
	if c.Schedule == "" {
		c.Schedule = DefaultSchedule
	}
	if c.Default.Warranty == 0 {
		c.Default.Warranty = DefaultWarranty
	}
	if c.Default.ServiceLife == 0 {
		c.Default.ServiceLife = DefaultServiceLife
	}
	if len(c.LeadDays) == 0 {
		c.LeadDays = DefaultLeadDays
	}
	c.LeadDays = append([]int(nil), c.LeadDays...)
	sort.Sort(sort.Reverse(sort.IntSlice(c.LeadDays)))
	return c
}

// Validate reports every setting that cannot work.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if len(strings.Fields(c.Schedule)) != 5 {
		errs = append(errs, fmt.Errorf("%w: schedule %q is not a five-field cron spec", ErrConfig, c.Schedule))
	}
	check := func(name string, l Life) {
		if l.Warranty < 0 || l.ServiceLife < 0 {
			errs = append(errs, fmt.Errorf("%w: %s: negative duration", ErrConfig, name))
		}
	}
	check("default", c.Default)
	for m, l := range c.Models {
		check("models."+m, l)
	}
	for _, d := range c.LeadDays {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%w: lead_days must be positive, got %d", ErrConfig, d))
		}
	}
	return errors.Join(errs...)
}

// life returns the durations of model, the default filling gaps.
func (c Config) life(model string) Life {
	l := c.Models[model]
	if l.Warranty == 0 {
		l.Warranty = c.Default.Warranty
	}
	if l.ServiceLife == 0 {
		l.ServiceLife = c.Default.ServiceLife
	}
	return l
}

// Options configures New. Registry and Raiser are required.
type Options struct {
	Config   Config
	Registry func() *registry.Registry
	Raiser   alert.Raiser
	// Clock drives the schedule and is the job's "now". Default real.
	Clock clockwork.Clock
	// Location is the zone of Schedule. Default time.Local.
	Location *time.Location
	// Cluster, when set (a replica of a cluster: backend/elector's
	// Slots.Every), makes one replica run each firing of Schedule (and of
	// the run at start, per minute): each run first claims its slot. Nil:
	// this process runs every firing itself.
	Cluster func(period time.Duration) gocron.Locker
	Logger  *slog.Logger
}

// Job is the daily reminder job.
type Job struct {
	opts Options
	cfg  Config
	log  *slog.Logger
	runs atomic.Uint64

	mu   sync.Mutex
	sent map[string]reminded // by the site finding's key
	// primed is set after the first run, which resolves both kinds for
	// every site with nothing due: the alert manager keeps alerts across
	// restarts, sent starts empty.
	primed bool
	sched  gocron.Scheduler
}

// New checks opts.
func New(opts Options) (*Job, error) {
	if opts.Registry == nil || opts.Raiser == nil {
		return nil, fmt.Errorf("%w: Registry and Raiser are required", ErrOptions)
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Job{opts: opts, cfg: opts.Config.withDefaults(), log: opts.Logger, sent: make(map[string]reminded)}, nil
}

// Run schedules the job and keeps it scheduled until ctx ends; it returns
// once a running check has finished.
func (j *Job) Run(ctx context.Context) error {
	if err := j.start(); err != nil {
		return err
	}
	<-ctx.Done()
	return j.stop()
}

// start schedules the job; stop ends it.
func (j *Job) start() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.sched != nil {
		return ErrStarted
	}
	if j.cfg.Disabled {
		return nil
	}
	so := []gocron.SchedulerOption{gocron.WithClock(j.opts.Clock), gocron.WithLocation(j.opts.Location)}
	if j.opts.Cluster != nil {
		// Cron firings are on minutes: the slot is the minute.
		so = append(so, gocron.WithDistributedLocker(j.opts.Cluster(time.Minute)))
	}
	s, err := gocron.NewScheduler(so...)
	if err != nil {
		return fmt.Errorf("lifecycle scheduler: %w", err)
	}
	_, err = s.NewJob(gocron.CronJob(j.cfg.Schedule, false), gocron.NewTask(j.scheduledRun),
		gocron.WithName(JobName), gocron.WithSingletonMode(gocron.LimitModeReschedule))
	if err != nil {
		_ = s.Shutdown()
		return fmt.Errorf("%w: schedule %q: %w", ErrConfig, j.cfg.Schedule, err)
	}
	if j.cfg.RunAtStart {
		_, err = s.NewJob(gocron.OneTimeJob(gocron.OneTimeJobStartImmediately()), gocron.NewTask(j.scheduledRun),
			gocron.WithName(JobName+"-at-start"))
		if err != nil {
			_ = s.Shutdown()
			return fmt.Errorf("lifecycle run at start: %w", err)
		}
	}
	s.Start()
	j.sched = s
	return nil
}

// scheduledRun is one run started by the scheduler.
func (j *Job) scheduledRun() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := j.CheckNow(ctx); err != nil {
		j.log.Warn("lifecycle: run failed", "err", err)
	}
}

// stop ends the schedule, waiting for a running job.
func (j *Job) stop() error {
	j.mu.Lock()
	s := j.sched
	j.sched = nil
	j.mu.Unlock()
	if s == nil {
		return nil
	}
	if err := s.Shutdown(); err != nil {
		return fmt.Errorf("lifecycle shutdown: %w", err)
	}
	return nil
}

// NextRun is when the schedule runs the job next; zero when not started.
func (j *Job) NextRun() time.Time {
	j.mu.Lock()
	s := j.sched
	j.mu.Unlock()
	if s == nil {
		return time.Time{}
	}
	for _, job := range s.Jobs() {
		if job.Name() != JobName {
			continue
		}
		if next, err := job.NextRun(); err == nil {
			return next
		}
	}
	return time.Time{}
}

// Runs counts completed runs (scheduled or not).
func (j *Job) Runs() uint64 { return j.runs.Load() }

// Due is one keypad with a date coming (or, for a replacement, passed).
type Due struct {
	Device, Counter string
	Date            time.Time
	// Stage is the lead time in days the keypad is within; 0 means the
	// date has passed (replacements only).
	Stage int
}

// Dues computes what is due at now: by site (org/site), then kind.
func (j *Job) Dues(now time.Time) map[alert.Subject]map[alert.Kind][]Due {
	reg := j.opts.Registry()
	out := make(map[alert.Subject]map[alert.Kind][]Due)
	add := func(s alert.Subject, k alert.Kind, d Due) {
		if out[s] == nil {
			out[s] = make(map[alert.Kind][]Due)
		}
		out[s][k] = append(out[s][k], d)
	}
	for _, dev := range reg.Devices() {
		p, ok := reg.Placement(dev.ID)
		if !ok || p.Counter == "" || dev.Installed.IsZero() {
			continue // in stock, or no install date to count from
		}
		site := alert.Subject{Org: p.Org, Site: p.Site}
		life := j.cfg.life(dev.Model)
		if end := dev.Installed.Add(life.Warranty); end.After(now) {
			if stage, ok := j.stage(end.Sub(now)); ok {
				add(site, alert.KindWarrantyEnd, Due{Device: dev.ID, Counter: p.Counter, Date: end, Stage: stage})
			}
		}
		replace := dev.Installed.Add(life.ServiceLife)
		if !replace.After(now) {
			add(site, alert.KindReplacementDue, Due{Device: dev.ID, Counter: p.Counter, Date: replace})
		} else if stage, ok := j.stage(replace.Sub(now)); ok {
			add(site, alert.KindReplacementDue, Due{Device: dev.ID, Counter: p.Counter, Date: replace, Stage: stage})
		}
	}
	for _, kinds := range out {
		for _, dues := range kinds {
			sort.Slice(dues, func(a, b int) bool { return dues[a].Device < dues[b].Device })
		}
	}
	return out
}

// stage is the smallest lead time (in days) that left falls within.
func (j *Job) stage(left time.Duration) (int, bool) {
	best, ok := 0, false
	for _, d := range j.cfg.LeadDays {
		if left <= time.Duration(d)*24*time.Hour {
			best, ok = d, true
		}
	}
	return best, ok
}

// CheckNow computes what is due now and raises or resolves the site
// findings, outside the schedule.
func (j *Job) CheckNow(ctx context.Context) error {
	defer j.runs.Add(1)
	now := j.opts.Clock.Now()
	dues := j.Dues(now)
	reg := j.opts.Registry()
	var errs []error
	seen := make(map[string]bool)
	for site, kinds := range dues {
		for kind, list := range kinds {
			key := alert.Finding{Kind: kind, Subject: site}.Key()
			seen[key] = true
			sig := signature(list)
			j.mu.Lock()
			before := j.sent[key].sig
			j.mu.Unlock()
			if !newStage(before, list) {
				j.setSent(key, reminded{kind, site, sig}) // only keypads left the list: no new reminder
				continue
			}
			f := finding(reg, kind, site, list, now)
			if err := j.opts.Raiser.Raise(ctx, f); err != nil {
				errs = append(errs, fmt.Errorf("raise %s for %s: %w", kind, site.Site, err))
				continue
			}
			j.log.Info("lifecycle: reminder", "kind", kind, "org", site.Org, "site", site.Site, "message", f.Message)
			j.setSent(key, reminded{kind, site, sig})
		}
	}
	j.mu.Lock()
	primed := j.primed
	j.mu.Unlock()
	if !primed {
		if err := j.prime(ctx, reg, seen); err != nil {
			errs = append(errs, err)
		} else {
			j.mu.Lock()
			j.primed = true
			j.mu.Unlock()
		}
	}
	j.mu.Lock()
	var cleared []reminded
	for key, r := range j.sent {
		if !seen[key] {
			cleared = append(cleared, r)
		}
	}
	j.mu.Unlock()
	for _, r := range cleared {
		kind, subject := r.kind, r.site
		key := alert.Finding{Kind: kind, Subject: subject}.Key()
		if err := j.opts.Raiser.Resolve(ctx, kind, subject, "no keypad due at this site"); err != nil {
			errs = append(errs, fmt.Errorf("resolve %s for %s: %w", kind, subject.Site, err))
			continue
		}
		j.log.Info("lifecycle: resolved", "kind", kind, "org", subject.Org, "site", subject.Site)
		j.mu.Lock()
		delete(j.sent, key)
		j.mu.Unlock()
	}
	return errors.Join(errs...)
}

// prime resolves both kinds at every site without a due keypad.
func (j *Job) prime(ctx context.Context, reg *registry.Registry, due map[string]bool) error {
	for _, s := range reg.Sites() {
		site := alert.Subject{Org: s.Org, Site: s.ID}
		for _, k := range []alert.Kind{alert.KindWarrantyEnd, alert.KindReplacementDue} {
			if due[alert.Finding{Kind: k, Subject: site}.Key()] {
				continue
			}
			if err := j.opts.Raiser.Resolve(ctx, k, site, "nothing due after restart"); err != nil {
				return fmt.Errorf("resolve %s for %s after start: %w", k, s.ID, err)
			}
		}
	}
	return nil
}

// reminded is the last reminder sent for a site and kind.
type reminded struct {
	kind alert.Kind
	site alert.Subject
	sig  string // "device:stage,...", see signature
}

func (j *Job) setSent(key string, r reminded) {
	j.mu.Lock()
	j.sent[key] = r
	j.mu.Unlock()
}

// signature lists device:stage pairs, the state a reminder was sent for.
func signature(list []Due) string {
	parts := make([]string, len(list))
	for i, d := range list {
		parts[i] = d.Device + ":" + strconv.Itoa(d.Stage)
	}
	return strings.Join(parts, ",")
}

// newStage reports whether a keypad in list is at a stage not yet reminded.
func newStage(sent string, list []Due) bool {
	had := make(map[string]bool)
	for _, p := range strings.Split(sent, ",") {
		had[p] = true
	}
	for _, d := range list {
		if !had[d.Device+":"+strconv.Itoa(d.Stage)] {
			return true
		}
	}
	return false
}

func finding(reg *registry.Registry, kind alert.Kind, site alert.Subject, list []Due, now time.Time) alert.Finding {
	siteName := site.Site
	if s, ok := reg.Site(site.Site); ok && s.Name != "" {
		siteName = s.Name
	}
	items := make([]string, len(list))
	devices := make([]string, len(list))
	overdue, soonest := 0, list[0].Date
	for i, d := range list {
		counter := d.Counter
		if c, ok := reg.Counter(d.Counter); ok && c.Name != "" {
			counter = c.Name
		}
		items[i] = fmt.Sprintf("%s at %s (%s)", d.Device, counter, d.Date.Format(time.DateOnly))
		devices[i] = d.Device
		if d.Stage == 0 {
			overdue++
		}
		if d.Date.Before(soonest) {
			soonest = d.Date
		}
	}
	f := alert.Finding{
		Kind: kind, Subject: site, Time: now,
		Details: map[string]string{"devices": strings.Join(devices, ","), "soonest": soonest.Format(time.DateOnly)},
	}
	switch kind {
	case alert.KindWarrantyEnd:
		f.Severity = alert.SeverityInfo
		f.Message = fmt.Sprintf("%s: warranty ends within %d days for %d keypad(s): %s",
			siteName, daysLeft(soonest, now), len(list), strings.Join(items, "; "))
		f.Hint = "Have these keypads checked while the warranty lasts; claim faults with the supplier before the date."
	default:
		f.Severity = alert.SeverityInfo
		if overdue > 0 {
			f.Severity = alert.SeverityWarning
		}
		f.Message = fmt.Sprintf("%s: %d keypad(s) due for replacement (%d past the date): %s",
			siteName, len(list), overdue, strings.Join(items, "; "))
		f.Hint = "Plan one visit to replace all of them; register each new keypad at the same counter so its history continues."
	}
	return f
}

// daysLeft rounds up: "within 7 days" on the morning 6.5 days before.
func daysLeft(date, now time.Time) int {
	d := date.Sub(now)
	if d <= 0 {
		return 0
	}
	return int((d + 24*time.Hour - 1) / (24 * time.Hour))
}
