// Package ratings turns the vote stream into alerts: a negative vote
// notifies the counter's responsible person (the alert manager groups
// several at one counter within minutes into one notice); a run of negative
// votes or a satisfied share below a threshold over a window raises a site
// alert for the manager; optionally a run of satisfied votes at a counter
// raises a recognition alert.
//
// Ingest hands votes over through OnVote, which never blocks: the vote is
// already durable, and only the notice about it may be lost when the
// hand-off queue is full (counted in semko_alert_vote_handoff_dropped_total).
package ratings

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/protocol"
)

// ErrOptions is returned by New for options that cannot work.
var ErrOptions = errors.New("invalid ratings options")

// Config is the tunable part of Options, as the alerts configuration
// names it.
type Config struct {
	// NegativeMax: a five-point vote at or below it notifies (1 or 2).
	// Default 1.
	NegativeMax int `yaml:"negative_max" json:"negative_max"`
	// StreakRun negative votes in a row at a site raise negative_streak.
	// Default 3; negative disables.
	StreakRun int `yaml:"streak_run" json:"streak_run"`
	// SatisfiedMin: a site whose satisfied share over Window falls below
	// it (with at least MinVotes votes) gets satisfaction_drop. Default
	// 0.6; negative disables.
	SatisfiedMin float64       `yaml:"satisfied_min" json:"satisfied_min"`
	Window       time.Duration `yaml:"window" json:"window"`       // default 1h
	MinVotes     int           `yaml:"min_votes" json:"min_votes"` // default 20
	// PositiveRun satisfied votes in a row at a counter raise
	// positive_streak (recognition). 0 disables.
	PositiveRun int `yaml:"positive_run" json:"positive_run"`
}

// Options configures New. Raiser and Registry are required.
type Options struct {
	Config
	Raiser   alert.Raiser
	Registry func() *registry.Registry
	// Windows keeps the streaks and the satisfied windows. Default: in
	// memory. Replicas sharing a fleet's votes pass their shared store's.
	Windows Windows
	// QueueSize bounds the votes waiting for the watcher. Default 4096.
	QueueSize  int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// maxWindowVotes bounds the votes remembered per site for the share.
const maxWindowVotes = 4096

// Watcher watches votes. OnVote may be called from any goroutine; Run
// consumes.
type Watcher struct {
	opts    Options
	log     *slog.Logger
	queue   chan item
	dropped atomic.Uint64
	dropM   prometheus.Counter
}

type item struct {
	v protocol.Vote
	p registry.Placement
}

// New checks opts and returns a Watcher.
func New(opts Options) (*Watcher, error) {
	if opts.Raiser == nil || opts.Registry == nil {
		return nil, fmt.Errorf("%w: Raiser and Registry are required", ErrOptions)
	}
	c := &opts.Config
	if c.NegativeMax == 0 {
		c.NegativeMax = 1
	}
	if c.NegativeMax < 1 || c.NegativeMax > 2 {
		return nil, fmt.Errorf("%w: negative_max must be 1 or 2", ErrOptions)
	}
	if c.StreakRun == 0 {
		c.StreakRun = 3
	}
	if c.SatisfiedMin == 0 {
		c.SatisfiedMin = 0.6
	}
	if c.SatisfiedMin > 1 {
		return nil, fmt.Errorf("%w: satisfied_min is a share, at most 1", ErrOptions)
	}
	if c.Window <= 0 {
		c.Window = time.Hour
	}
	if c.MinVotes <= 0 {
		c.MinVotes = 20
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4096
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Windows == nil {
		opts.Windows = NewMemory()
	}
	w := &Watcher{
		opts: opts, log: opts.Logger, queue: make(chan item, opts.QueueSize),
		dropM: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "semko_alert_vote_handoff_dropped_total",
			Help: "Votes the rating watcher had no room for: their notices are lost, the votes themselves are stored.",
		}),
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(w.dropM); err != nil {
			return nil, fmt.Errorf("ratings metrics: %w", err)
		}
	}
	return w, nil
}

// OnVote hands a durably stored vote to the watcher without blocking; it
// fits ingest.Options.OnVote.
func (w *Watcher) OnVote(v protocol.Vote, p registry.Placement) {
	select {
	case w.queue <- item{v, p}:
	default:
		w.dropped.Add(1)
		w.dropM.Inc()
	}
}

// Dropped is how many votes found the hand-off queue full.
func (w *Watcher) Dropped() uint64 { return w.dropped.Load() }

// raiseRetryFor bounds how long the watcher retries a store call that
// failed (a Raise, or the shared windows, when PostgreSQL restarts) before
// it gives up. Votes arriving meanwhile wait in the queue.
var raiseRetryFor = 30 * time.Second

// retry runs call, retrying a failure with backoff for up to
// raiseRetryFor: a store restart of a few seconds must not lose the alert
// of a vote that is already stored. what and site name it in the log.
func (w *Watcher) retry(ctx context.Context, what, site string, call func() error) error {
	deadline := time.Now().Add(raiseRetryFor)
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := call()
		if err == nil {
			if attempt > 1 {
				w.log.Info("ratings: done after retrying", "what", what, "site", site, "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return err // shutting down: the vote is stored, nothing to say
		}
		if time.Now().Add(wait).After(deadline) {
			w.log.Warn("ratings: failed, given up", "what", what, "site", site, "attempts", attempt, "err", err)
			return err
		}
		if attempt == 1 {
			w.log.Warn("ratings: failed, retrying", "what", what, "site", site, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// raise hands f to the Raiser, retried.
func (w *Watcher) raise(ctx context.Context, f alert.Finding, site string) {
	_ = w.retry(ctx, "raise "+string(f.Kind), site, func() error { return w.opts.Raiser.Raise(ctx, f) })
}

// Run watches until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case it := <-w.queue:
			w.watch(ctx, it.v, it.p)
		}
	}
}

func (w *Watcher) watch(ctx context.Context, v protocol.Vote, p registry.Placement) {
	if !v.Valid || p.Site == "" {
		return
	}
	reg := w.opts.Registry()
	site := alert.Subject{Org: p.Org, Site: p.Site}
	if v.Scale == protocol.ScaleCSAT5 && v.Score <= w.opts.NegativeMax {
		w.raise(ctx, w.negative(reg, v, p), p.Site)
	}
	w.watchSite(ctx, reg, v, p, site)
	w.watchCounter(ctx, reg, v, p)
}

// watchSite judges the site's run of negative votes and its satisfied
// share over the window, from the state every replica adds to.
func (w *Watcher) watchSite(ctx context.Context, reg *registry.Registry, v protocol.Vote, p registry.Placement, site alert.Subject) {
	var (
		streak, n       int
		share           float64
		drop, recovered bool
	)
	err := w.retry(ctx, "site window", p.Site, func() error {
		return w.opts.Windows.Site(ctx, site.Key(), func(st *SiteWindow) {
			drop, recovered = false, false // fn may run again on a retried transaction
			if v.Negative() {
				st.Streak++
			} else {
				st.Streak = 0
			}
			streak = st.Streak
			if w.opts.SatisfiedMin <= 0 {
				return
			}
			st.add(v.Time, v.Satisfied(), w.opts.Window, maxWindowVotes)
			share, n = st.share()
			switch {
			case n >= w.opts.MinVotes && share < w.opts.SatisfiedMin:
				st.Dropped, drop = true, true
			case st.Dropped && share >= w.opts.SatisfiedMin:
				st.Dropped, recovered = false, true
			}
		})
	})
	if err != nil {
		return // logged; the vote itself is stored, only these judgements are lost
	}
	name := siteName(reg, p.Site)
	if v.Negative() && w.opts.StreakRun > 0 && streak >= w.opts.StreakRun {
		w.raise(ctx, alert.Finding{
			Kind: alert.KindNegativeStreak, Severity: alert.SeverityWarning, Subject: site, Time: v.Time,
			Message: fmt.Sprintf("%d negative ratings in a row at %s", streak, name),
			Hint:    "Look at the queue and the counters now; the responsible persons have the single votes.",
			Details: map[string]string{"run": strconv.Itoa(streak), "site_name": name},
		}, p.Site)
	}
	switch {
	case drop:
		w.raise(ctx, alert.Finding{
			Kind: alert.KindSatisfactionDrop, Severity: alert.SeverityWarning, Subject: site, Time: v.Time,
			Message: fmt.Sprintf("Satisfied share at %s is %.0f%% over the last %s (%d votes), below %.0f%%",
				name, 100*share, w.opts.Window, n, 100*w.opts.SatisfiedMin),
			Hint: "Compare counters and services on the site dashboard to see where it drops.",
			Details: map[string]string{"share": strconv.FormatFloat(share, 'f', 3, 64), "votes": strconv.Itoa(n),
				"threshold": strconv.FormatFloat(w.opts.SatisfiedMin, 'f', 3, 64), "site_name": name},
		}, p.Site)
	case recovered:
		_ = w.retry(ctx, "resolve "+string(alert.KindSatisfactionDrop), p.Site, func() error {
			return w.opts.Raiser.Resolve(ctx, alert.KindSatisfactionDrop, site, fmt.Sprintf("satisfied share back at %.0f%%", 100*share))
		})
	}
}

// watchCounter raises recognition for a run of satisfied votes at a
// counter.
func (w *Watcher) watchCounter(ctx context.Context, reg *registry.Registry, v protocol.Vote, p registry.Placement) {
	if w.opts.PositiveRun <= 0 || p.Counter == "" {
		return
	}
	reached := false
	key := alert.Subject{Org: p.Org, Site: p.Site}.Key() + "/" + p.Counter
	err := w.retry(ctx, "counter run", p.Site, func() error {
		return w.opts.Windows.Counter(ctx, key, func(run *int) {
			reached = false
			switch {
			case !v.Satisfied():
				*run = 0
			case *run+1 >= w.opts.PositiveRun:
				*run, reached = 0, true
			default:
				*run++
			}
		})
	})
	if err != nil || !reached {
		return
	}
	c, _ := reg.Counter(p.Counter)
	w.raise(ctx, alert.Finding{
		Kind: alert.KindPositiveStreak, Severity: alert.SeverityInfo, Time: v.Time,
		Subject: alert.Subject{Org: p.Org, Site: p.Site, Counter: p.Counter},
		Message: fmt.Sprintf("%d satisfied customers in a row at %s", w.opts.PositiveRun, cmp.Or(c.Name, p.Counter)),
		Details: responsible(c.Responsible, map[string]string{"run": strconv.Itoa(w.opts.PositiveRun)}),
	}, p.Site)
}

// negative builds the finding for one negative vote, with everything the
// responsible person needs to find the customer.
func (w *Watcher) negative(reg *registry.Registry, v protocol.Vote, p registry.Placement) alert.Finding {
	c, _ := reg.Counter(p.Counter)
	s, _ := reg.Site(p.Site)
	opID, svcID := cmp.Or(v.Operator, p.Operator), cmp.Or(v.Service, p.Service)
	// Operator ids are the fleet's, not the organisation's: one of another
	// organisation must not lend its employee's name to this notice.
	op, ok := reg.Operator(opID)
	if !ok || op.Org != p.Org {
		op = registry.Operator{}
	}
	svc, _ := reg.Service(svcID)
	loc := s.Location
	if loc == nil {
		loc = time.UTC
	}
	local := v.Time.In(loc)
	d := map[string]string{
		"score": strconv.Itoa(v.Score), "scale": string(v.Scale), "device": v.Device,
		"site_name": cmp.Or(s.Name, p.Site), "counter_name": cmp.Or(c.Name, p.Counter),
		"operator": opID, "operator_name": cmp.Or(op.Name, opID),
		"service": svcID, "service_name": cmp.Or(svc.Name, svcID),
		"time": local.Format(time.RFC3339), "local_time": local.Format("15:04"),
	}
	if v.ServiceS > 0 {
		d["service_s"] = strconv.Itoa(v.ServiceS)
		d["service_duration"] = (time.Duration(v.ServiceS) * time.Second).String()
	}
	if v.Activation != "" {
		d["activation"] = v.Activation
	}
	msg := fmt.Sprintf("Rating %d of 5 at %s, %s, at %s", v.Score, d["counter_name"], d["site_name"], d["local_time"])
	if opID != "" {
		msg += ", served by " + d["operator_name"]
	}
	if svcID != "" {
		msg += ", " + d["service_name"]
	}
	if v.ServiceS > 0 {
		msg += " (" + d["service_duration"] + ")"
	}
	return alert.Finding{
		Kind: alert.KindNegativeVote, Severity: alert.SeverityWarning, Time: v.Time,
		// One alert per counter: several votes within minutes update it
		// and go out as one notice.
		Subject: alert.Subject{Org: p.Org, Site: p.Site, Counter: p.Counter},
		Message: msg,
		Hint:    "The customer may still be in the office: talk to them and to the operator.",
		Details: responsible(c.Responsible, d),
	}
}

func responsible(r registry.Responsible, d map[string]string) map[string]string {
	if r.Email != "" {
		d[alert.DetailResponsibleEmail] = r.Email
		d[alert.DetailResponsibleName] = r.Name
		d[alert.DetailResponsibleLang] = r.Lang
	}
	return d
}

func siteName(reg *registry.Registry, id string) string {
	s, _ := reg.Site(id)
	return cmp.Or(s.Name, id)
}
