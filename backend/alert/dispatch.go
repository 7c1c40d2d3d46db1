package alert

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// groupState is what the dispatcher remembers of one group: alerts of one
// route, site, kind and escalation level that are notified together.
type groupState struct {
	firstSeen time.Time // when the group first had an alert to send
	lastSent  time.Time
	sentSig   string // the alerts (ids and counts) of the last notice
	// notified is the latest stored notified time of the group's alerts
	// at the last flush (shared mode): a later one is another replica's
	// notice.
	notified time.Time
}

type pending struct {
	route  *Route
	level  int
	alerts []Alert
}

// Flush runs the notification pipeline once: it mutes (silences,
// maintenance windows, inhibition), groups firing alerts by route, site,
// kind and escalation level, and queues a notice for each group whose
// group wait, group interval (it changed) or repeat interval (it did not)
// has passed. Acknowledged alerts neither repeat nor escalate. A notice
// that finds the queue full is not counted as sent and is tried again at
// the next flush.
func (m *Manager) Flush(ctx context.Context) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.upd != nil {
		// Another replica may have raised, acknowledged or resolved since.
		if err := m.reload(ctx); err != nil {
			m.log.Warn("alert: dispatch skipped", "err", err)
			return
		}
	}
	if !m.leading() {
		return
	}
	byKey := map[string]*pending{}
	for _, a := range m.open {
		if a.State != StateFiring {
			continue
		}
		if why := m.mutedBy(*a, now); why != "" {
			continue
		}
		route := m.opts.Route.Find(*a)
		key := route.ID + "|" + a.Subject.Org + "/" + a.Subject.Site + "|" + string(a.Kind) + "|" + strconv.Itoa(a.Escalation)
		p := byKey[key]
		if p == nil {
			p = &pending{route: route, level: a.Escalation}
			byKey[key] = p
		}
		p.alerts = append(p.alerts, cloneAlert(*a))
	}
	for key := range m.groups {
		if byKey[key] == nil {
			delete(m.groups, key) // emptied: a new alert starts a new group wait
		}
	}
	for key, p := range byKey {
		slices.SortFunc(p.alerts, func(a, b Alert) int { return int(a.ID - b.ID) })
		sig := signature(p.alerts)
		g, known := m.groups[key]
		if !known {
			g = &groupState{firstSeen: now}
			// Every alert notified before (by an earlier process): the
			// group was sent then, and only repeats.
			for i, a := range p.alerts {
				if a.NotifiedAt.IsZero() {
					g.lastSent = time.Time{}
					break
				}
				if i == 0 || a.NotifiedAt.After(g.lastSent) {
					g.lastSent = a.NotifiedAt
				}
			}
			if !g.lastSent.IsZero() {
				g.sentSig = sig
			}
			m.groups[key] = g
		}
		if m.upd != nil {
			// Another replica may have sent this group since the last
			// flush (it led for a while): its notified times say when. A
			// group new here took them from the store above.
			latest, all := time.Time{}, true
			for _, a := range p.alerts {
				if a.NotifiedAt.After(latest) {
					latest = a.NotifiedAt
				}
				all = all && !a.NotifiedAt.IsZero()
			}
			if known && latest.After(g.notified) && latest.After(g.lastSent) {
				g.lastSent, g.sentSig = latest, ""
				if all {
					g.sentSig = sig
				}
			}
			g.notified = latest
		}
		var due time.Time
		switch {
		case g.lastSent.IsZero():
			due = g.firstSeen.Add(p.route.GroupWait)
		case sig != g.sentSig:
			due = g.lastSent.Add(p.route.GroupInterval)
		default:
			due = g.lastSent.Add(p.route.RepeatInterval)
		}
		if now.Before(due) {
			continue
		}
		notices := m.notices(key, p, !g.lastSent.IsZero() && sig == g.sentSig, now)
		if m.upd != nil {
			// While the schedule's lease moves, two replicas may both lead
			// for a tick, each with the alerts it loaded: the one whose
			// claim in the store succeeds sends, the other rebuilds the
			// group from the stored notified times next tick.
			if room := cap(m.queue) - len(m.queue); room < len(notices) {
				m.m.notices.WithLabelValues("queue_full").Inc()
				m.log.Warn("alert: notice queue full; will retry", "group", key)
				continue
			}
			if !m.claim(ctx, p.alerts, now) {
				delete(m.groups, key)
				continue
			}
			if m.enqueue(ctx, notices) {
				g.lastSent, g.sentSig = now, sig
			}
			continue
		}
		if m.enqueue(ctx, notices) {
			g.lastSent, g.sentSig = now, sig
			m.markNotified(ctx, p.alerts, now)
		}
	}
}

// errClaimed: another replica notified the alert since this one loaded it.
var errClaimed = errors.New("notified by another replica")

// claim sets the alerts' notified time to now in the shared store, each
// only if it is still the one this replica loaded (compare and set, in
// ID order). If one was notified by another replica meanwhile, the ones
// already claimed are given back and claim is false: that replica sends.
// Called with mu held.
func (m *Manager) claim(ctx context.Context, alerts []Alert, now time.Time) bool {
	for i, sent := range alerts {
		_, _, err := m.apply(ctx, Which{ID: sent.ID}, func(cur *Alert) (*Alert, *Event, error) {
			switch {
			case cur == nil || !cur.Open():
				return nil, nil, nil // resolved meanwhile: nothing to claim
			case !cur.NotifiedAt.Equal(sent.NotifiedAt):
				return nil, nil, errClaimed
			}
			cur.NotifiedAt = now
			return cur, nil, nil
		})
		if err == nil {
			continue
		}
		if errors.Is(err, errClaimed) {
			m.log.Debug("alert: notified by another replica", "id", sent.ID)
		} else {
			m.log.Warn("alert: claim notice", "id", sent.ID, "err", err)
		}
		for _, back := range alerts[:i] {
			if _, _, err := m.apply(ctx, Which{ID: back.ID}, func(cur *Alert) (*Alert, *Event, error) {
				if cur == nil || !cur.NotifiedAt.Equal(now) {
					return nil, nil, nil
				}
				cur.NotifiedAt = back.NotifiedAt
				return cur, nil, nil
			}); err != nil {
				m.log.Warn("alert: give back claim", "id", back.ID, "err", err)
			}
		}
		return false
	}
	return true
}

// markNotified stores when the alerts were last notified (one process;
// shared mode claims instead). Called with mu held; a failure is logged
// (at worst a restart notifies once more).
func (m *Manager) markNotified(ctx context.Context, alerts []Alert, now time.Time) {
	for _, sent := range alerts {
		a := m.open[sent.Key()]
		if a == nil {
			continue
		}
		upd := cloneAlert(*a)
		upd.NotifiedAt = now
		if err := m.opts.Store.Save(ctx, &upd, nil); err != nil {
			m.log.Warn("alert: store notified time", "id", a.ID, "err", err)
			continue
		}
		*a = upd
	}
}

func signature(alerts []Alert) string {
	var b strings.Builder
	for _, a := range alerts {
		b.WriteString(strconv.FormatInt(a.ID, 10))
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(a.Count))
		b.WriteByte(' ')
	}
	return b.String()
}

// notices builds one notice per receiver of the group's level. The
// responsible-person receiver becomes one notice per person, each with the
// alerts of that person's counters.
func (m *Manager) notices(group string, p *pending, repeat bool, now time.Time) []Notice {
	kind, sev := p.alerts[0].Kind, SeverityInfo
	for _, a := range p.alerts {
		if rank(a.Severity) > rank(sev) {
			sev = a.Severity
		}
	}
	base := Notice{Group: group, Kind: kind, Severity: sev, Escalation: p.level, Repeat: repeat, Time: now}
	var out []Notice
	add := func(r Receiver, alerts []Alert) {
		n := base
		m.seq++
		n.ID = fmt.Sprintf("n%x-%d", now.UnixNano(), m.seq)
		n.Receiver, n.Alerts, n.Lang = r, alerts, r.Lang
		if n.Lang == "" {
			n.Lang = m.opts.Lang
		}
		out = append(out, n)
	}
	for _, name := range p.route.Receivers(p.level) {
		if name != ReceiverResponsible {
			add(m.opts.Receivers[name], p.alerts)
			continue
		}
		var people []string
		byPerson := map[string][]Alert{}
		for _, a := range p.alerts {
			email := a.Details[DetailResponsibleEmail]
			if email == "" {
				m.log.Warn("alert: no responsible person to notify", "kind", a.Kind, "subject", a.Subject.Key())
				continue
			}
			if byPerson[email] == nil {
				people = append(people, email)
			}
			byPerson[email] = append(byPerson[email], a)
		}
		for _, email := range people {
			first := byPerson[email][0].Details
			add(Receiver{Name: first[DetailResponsibleName], Email: []string{email}, Lang: first[DetailResponsibleLang]}, byPerson[email])
		}
	}
	return out
}

func rank(s Severity) int {
	switch s {
	case SeverityCritical:
		return 2
	case SeverityWarning:
		return 1
	}
	return 0
}

// enqueue hands the notices to the workers without blocking; false when
// the queue could not take them all.
func (m *Manager) enqueue(ctx context.Context, notices []Notice) bool {
	for _, n := range notices {
		select {
		case m.queue <- n:
		case <-ctx.Done():
			return false
		default:
			m.m.notices.WithLabelValues("queue_full").Inc()
			m.log.Warn("alert: notice queue full; will retry", "group", n.Group, "receiver", n.Receiver.Name)
			return false
		}
	}
	return true
}

// deliver gives one notice to every notifier, retrying recoverable
// failures with exponential backoff for up to RetryFor.
func (m *Manager) deliver(ctx context.Context, n Notice) {
	m.mu.Lock()
	notifiers := slices.Clip(m.opts.Notifiers)
	m.mu.Unlock()
	for _, nf := range notifiers {
		start := m.clock.Now()
		backoff := time.Second
		for attempt := 1; ; attempt++ {
			callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			retry, err := nf.Notify(callCtx, n)
			cancel()
			if err == nil {
				m.m.notices.WithLabelValues("sent").Inc()
				break
			}
			if !retry || ctx.Err() != nil || m.clock.Since(start)+backoff > m.opts.RetryFor {
				m.m.notices.WithLabelValues("failed").Inc()
				m.log.Error("alert: notice not delivered", "receiver", n.Receiver.Name, "group", n.Group,
					"attempts", attempt, "err", err)
				break
			}
			m.log.Warn("alert: notice failed; retrying", "receiver", n.Receiver.Name, "attempt", attempt, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-m.clock.After(backoff):
			}
			backoff = min(2*backoff, time.Minute)
		}
	}
}

// AddNotifier adds a channel; notices queued from then on reach it too.
func (m *Manager) AddNotifier(n Notifier) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opts.Notifiers = append(m.opts.Notifiers, n)
}

// Run delivers notices and runs the pipeline on a gocron scheduler (Flush
// every Tick, CheckDeadlines every CheckEvery) until ctx ends. Notices
// still queued then are dropped (logged); their alerts stay open and are
// notified again after a restart.
func (m *Manager) Run(ctx context.Context) error {
	s, err := gocron.NewScheduler(gocron.WithClock(m.clock), gocron.WithLogger(m.log))
	if err != nil {
		return fmt.Errorf("alert scheduler: %w", err)
	}
	jobs := []struct {
		name  string
		every time.Duration
		fn    func()
	}{
		{"alerts-dispatch", m.opts.Tick, func() { m.Flush(ctx) }},
		{"alerts-deadlines", m.opts.CheckEvery, func() {
			if err := m.CheckDeadlines(ctx); err != nil {
				m.log.Warn("alert: check deadlines", "err", err)
			}
		}},
	}
	for _, j := range jobs {
		if _, err := s.NewJob(gocron.DurationJob(j.every), gocron.NewTask(j.fn),
			gocron.WithName(j.name), gocron.WithSingletonMode(gocron.LimitModeReschedule)); err != nil {
			return fmt.Errorf("alert job %s: %w", j.name, err)
		}
	}
	var wg sync.WaitGroup
	for range m.opts.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case n := <-m.queue:
					m.deliver(ctx, n)
				}
			}
		})
	}
	s.Start()
	<-ctx.Done()
	err = s.Shutdown()
	wg.Wait()
	if left := len(m.queue); left > 0 {
		m.log.Warn("alert: notices left undelivered at shutdown", "count", left)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("alert scheduler shutdown: %w", err)
	}
	return nil
}

type metrics struct {
	notices *prometheus.CounterVec
	events  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, open func() float64) (*metrics, error) {
	m := &metrics{
		notices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "semko_alert_notices_total",
			Help: "Notices by result: sent (per notifier), failed (gave up), queue_full (deferred to the next flush).",
		}, []string{"result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "semko_alert_state_changes_total", Help: "Alert state changes by action.",
		}, []string{"action"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.notices, m.events, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "semko_alerts_open", Help: "Alerts firing or acknowledged.",
	}, open)} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("alert metrics: %w", err)
		}
	}
	return m, nil
}
