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
	// QueueSize bounds the votes waiting for the watcher. Default 4096.
	QueueSize  int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// maxWindowVotes bounds the votes remembered per site for the share.
const maxWindowVotes = 4096

type sample struct {
	at        time.Time
	satisfied bool
}

type siteState struct {
	streak  int      // negative votes in a row
	recent  []sample // valid votes within the window, oldest first
	dropped bool     // satisfaction_drop is raised
}

// Watcher watches votes. OnVote may be called from any goroutine; Run
// consumes.
type Watcher struct {
	opts    Options
	log     *slog.Logger
	queue   chan item
	dropped atomic.Uint64
	dropM   prometheus.Counter

	// Owned by Run's goroutine.
	sites    map[string]*siteState
	counters map[string]int // satisfied votes in a row
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
	w := &Watcher{
		opts: opts, log: opts.Logger, queue: make(chan item, opts.QueueSize),
		sites: map[string]*siteState{}, counters: map[string]int{},
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

// raiseRetryFor bounds how long the watcher retries a finding whose Raise
// failed (the alert store unreachable, as in a PostgreSQL restart) before
// it gives the finding up. Votes arriving meanwhile wait in the queue.
var raiseRetryFor = 30 * time.Second

// raise hands f to the Raiser, retrying a failure with backoff for up to
// raiseRetryFor: a store restart of a few seconds must not lose the alert
// of a vote that is already stored.
func (w *Watcher) raise(ctx context.Context, f alert.Finding, site string) {
	deadline := time.Now().Add(raiseRetryFor)
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := w.opts.Raiser.Raise(ctx, f)
		if err == nil {
			if attempt > 1 {
				w.log.Info("ratings: raised after retrying", "kind", f.Kind, "site", site, "attempts", attempt)
			}
			return
		}
		if ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			w.log.Warn("ratings: raise failed, finding dropped", "kind", f.Kind, "site", site, "attempts", attempt, "err", err)
			return
		}
		if attempt == 1 {
			w.log.Warn("ratings: raise failed, retrying", "kind", f.Kind, "site", site, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
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
	st := w.sites[site.Key()]
	if st == nil {
		st = &siteState{}
		w.sites[site.Key()] = st
	}
	raise := func(f alert.Finding) { w.raise(ctx, f, p.Site) }

	if v.Scale == protocol.ScaleCSAT5 && v.Score <= w.opts.NegativeMax {
		raise(w.negative(reg, v, p))
	}

	// A run of negative votes at the site.
	if v.Negative() {
		st.streak++
		if w.opts.StreakRun > 0 && st.streak >= w.opts.StreakRun {
			raise(alert.Finding{
				Kind: alert.KindNegativeStreak, Severity: alert.SeverityWarning, Subject: site, Time: v.Time,
				Message: fmt.Sprintf("%d negative ratings in a row at %s", st.streak, siteName(reg, p.Site)),
				Hint:    "Look at the queue and the counters now; the responsible persons have the single votes.",
				Details: map[string]string{"run": strconv.Itoa(st.streak), "site_name": siteName(reg, p.Site)},
			})
		}
	} else {
		st.streak = 0
	}

	// The satisfied share over the window.
	if w.opts.SatisfiedMin > 0 {
		st.recent = append(st.recent, sample{v.Time, v.Satisfied()})
		cut := 0
		for cut < len(st.recent) && (v.Time.Sub(st.recent[cut].at) > w.opts.Window || len(st.recent)-cut > maxWindowVotes) {
			cut++
		}
		st.recent = st.recent[cut:]
		satisfied := 0
		for _, s := range st.recent {
			if s.satisfied {
				satisfied++
			}
		}
		n := len(st.recent)
		share := float64(satisfied) / float64(n)
		switch {
		case n >= w.opts.MinVotes && share < w.opts.SatisfiedMin:
			st.dropped = true
			raise(alert.Finding{
				Kind: alert.KindSatisfactionDrop, Severity: alert.SeverityWarning, Subject: site, Time: v.Time,
				Message: fmt.Sprintf("Satisfied share at %s is %.0f%% over the last %s (%d votes), below %.0f%%",
					siteName(reg, p.Site), 100*share, w.opts.Window, n, 100*w.opts.SatisfiedMin),
				Hint: "Compare counters and services on the site dashboard to see where it drops.",
				Details: map[string]string{"share": strconv.FormatFloat(share, 'f', 3, 64), "votes": strconv.Itoa(n),
					"threshold": strconv.FormatFloat(w.opts.SatisfiedMin, 'f', 3, 64), "site_name": siteName(reg, p.Site)},
			})
		case st.dropped && share >= w.opts.SatisfiedMin:
			st.dropped = false
			if err := w.opts.Raiser.Resolve(ctx, alert.KindSatisfactionDrop, site,
				fmt.Sprintf("satisfied share back at %.0f%%", 100*share)); err != nil {
				w.log.Warn("ratings: resolve", "site", p.Site, "err", err)
			}
		}
	}

	// Recognition.
	if w.opts.PositiveRun > 0 && p.Counter != "" {
		key := site.Key() + "/" + p.Counter
		if !v.Satisfied() {
			delete(w.counters, key)
			return
		}
		w.counters[key]++
		if w.counters[key] >= w.opts.PositiveRun {
			delete(w.counters, key)
			c, _ := reg.Counter(p.Counter)
			f := alert.Finding{
				Kind: alert.KindPositiveStreak, Severity: alert.SeverityInfo, Time: v.Time,
				Subject: alert.Subject{Org: p.Org, Site: p.Site, Counter: p.Counter},
				Message: fmt.Sprintf("%d satisfied customers in a row at %s", w.opts.PositiveRun, cmp.Or(c.Name, p.Counter)),
				Details: responsible(c.Responsible, map[string]string{"run": strconv.Itoa(w.opts.PositiveRun)}),
			}
			raise(f)
		}
	}
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
