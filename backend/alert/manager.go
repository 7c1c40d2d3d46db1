package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/alert/calendar"
)

// Defaults for Options.
const (
	DefaultTick       = time.Second
	DefaultCheckEvery = time.Minute
	DefaultQueueSize  = 256
	DefaultWorkers    = 2
	DefaultRetryFor   = 10 * time.Minute
	DefaultLang       = "en"
)

// Options configures a Manager. Everything is optional.
type Options struct {
	// Store keeps alerts, the audit trail and silences. Default: a MemStore.
	Store Store
	// Route is the routing tree. Default: one node without receivers.
	Route *Route
	// Receivers by name, as the routing tree names them.
	Receivers map[string]Receiver
	// Notifiers deliver each notice; every notifier gets every notice and
	// skips receivers without its channel.
	Notifiers []Notifier
	// Calendar returns the business calendar deadlines of a subject are
	// counted on. Default: calendar.Always (working time = elapsed time).
	Calendar func(Subject) *calendar.Calendar
	// Windows are recurring maintenance windows that mute what they match.
	Windows []MaintenanceWindow
	// SiteDevices returns how many devices are installed at a site. With
	// it the manager raises site_offline when all of a site's devices (two
	// or more) are offline, and mutes their own offline alerts meanwhile.
	SiteDevices func(org, site string) int
	// Expire closes alerts of a kind that have not been raised again for
	// the given time: event-like alerts (negative votes) that no condition
	// resolves.
	Expire map[Kind]time.Duration
	// Record is called after each state change, e.g. to write the `alert`
	// point to InfluxDB through the spool. An error is logged, not
	// returned: the change is already stored.
	Record func(ctx context.Context, a Alert, ev Event) error
	// Lang is the notice language for receivers that name none.
	Lang string
	// Clock drives the scheduler, retries and timestamps. Default: real.
	Clock clockwork.Clock
	// Tick is how often groups are checked for notices due; CheckEvery how
	// often deadlines and expiries are.
	Tick, CheckEvery time.Duration
	// QueueSize bounds the notices waiting for a worker; Workers deliver
	// them. RetryFor is how long a recoverable failure is retried.
	QueueSize, Workers int
	RetryFor           time.Duration
	Logger             *slog.Logger
	Registerer         prometheus.Registerer
}

// Manager keeps the alerts: one open alert per kind and subject, its state
// and audit trail, and the pipeline that turns alerts into notices (mute,
// group, route, notify with retry, repeat, escalate). It implements Raiser.
type Manager struct {
	opts  Options
	log   *slog.Logger
	clock clockwork.Clock
	m     *metrics
	queue chan Notice

	mu       sync.Mutex
	open     map[string]*Alert // by Alert.Key; bounded by subjects x kinds
	silences []Silence
	groups   map[string]*groupState
	seq      uint64
}

var _ Raiser = (*Manager)(nil)

// New loads the open alerts and silences from the store.
func New(ctx context.Context, opts Options) (*Manager, error) {
	if opts.Store == nil {
		opts.Store = NewMemStore()
	}
	if opts.Route == nil {
		opts.Route, _ = NewRoute(RouteConfig{}, nil)
	}
	if opts.Calendar == nil {
		always := calendar.Always()
		opts.Calendar = func(Subject) *calendar.Calendar { return always }
	}
	if opts.Lang == "" {
		opts.Lang = DefaultLang
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Tick <= 0 {
		opts.Tick = DefaultTick
	}
	if opts.CheckEvery <= 0 {
		opts.CheckEvery = DefaultCheckEvery
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.RetryFor <= 0 {
		opts.RetryFor = DefaultRetryFor
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		opts: opts, log: opts.Logger, clock: opts.Clock,
		queue: make(chan Notice, opts.QueueSize),
		open:  map[string]*Alert{}, groups: map[string]*groupState{},
	}
	open, err := opts.Store.OpenAlerts(ctx)
	if err != nil {
		return nil, fmt.Errorf("load open alerts: %w", err)
	}
	for i := range open {
		a := open[i]
		m.open[a.Key()] = &a
	}
	if m.silences, err = opts.Store.Silences(ctx); err != nil {
		return nil, fmt.Errorf("load silences: %w", err)
	}
	if m.m, err = newMetrics(opts.Registerer, m.openCount); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Manager) now() time.Time { return m.clock.Now() }

func (m *Manager) openCount() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return float64(len(m.open))
}

// change is a state change to hand to Record once the lock is released.
type change struct {
	a  Alert
	ev Event
}

func (m *Manager) record(ctx context.Context, changes []change) {
	for _, c := range changes {
		m.m.events.WithLabelValues(string(c.ev.Action)).Inc()
		m.log.Info("alert "+string(c.ev.Action), "id", c.a.ID, "kind", c.a.Kind, "subject", c.a.Subject.Key(),
			"state", c.a.State, "actor", c.ev.Actor)
		if m.opts.Record == nil {
			continue
		}
		if err := m.opts.Record(ctx, c.a, c.ev); err != nil {
			m.log.Warn("alert: record state change", "id", c.a.ID, "err", err)
		}
	}
}

// Raise opens the alert for f's kind and subject, or updates the open one
// (count, last seen, message, severity).
func (m *Manager) Raise(ctx context.Context, f Finding) error {
	if f.Kind == "" {
		return fmt.Errorf("raise: %w: finding without kind", ErrInvalid)
	}
	switch f.Severity {
	case "":
		f.Severity = SeverityWarning
	case SeverityInfo, SeverityWarning, SeverityCritical:
	default:
		return fmt.Errorf("raise: %w: severity %q", ErrInvalid, f.Severity)
	}
	now := m.now()
	if f.Time.IsZero() {
		f.Time = now
	}
	m.mu.Lock()
	changes, err := m.raiseLocked(ctx, f, now)
	m.mu.Unlock()
	m.record(ctx, changes)
	return err
}

func (m *Manager) raiseLocked(ctx context.Context, f Finding, now time.Time) ([]change, error) {
	key := f.Key()
	if a, ok := m.open[key]; ok {
		upd := cloneAlert(*a)
		upd.Count++
		upd.LastSeen, upd.UpdatedAt = f.Time, now
		upd.Message, upd.Hint, upd.Details, upd.Severity = f.Message, f.Hint, f.Details, f.Severity
		if err := m.opts.Store.Save(ctx, &upd, nil); err != nil {
			return nil, fmt.Errorf("raise: save: %w", err)
		}
		*a = upd
		return nil, nil
	}
	a := &Alert{
		Kind: f.Kind, Severity: f.Severity, Subject: f.Subject, State: StateFiring,
		Message: f.Message, Hint: f.Hint, Details: f.Details, Count: 1,
		StartsAt: f.Time, LastSeen: f.Time, UpdatedAt: now,
	}
	a.DueAt = m.due(*a, now)
	ev := Event{Time: now, Action: ActionRaised, State: StateFiring, Comment: f.Message}
	if err := m.opts.Store.Save(ctx, a, &ev); err != nil {
		return nil, fmt.Errorf("raise: save: %w", err)
	}
	m.open[key] = a
	changes := []change{{*a, ev}}
	if a.Kind == KindOffline && a.Subject.Device != "" {
		more, err := m.checkSiteOffline(ctx, a.Subject, now)
		changes = append(changes, more...)
		if err != nil {
			return changes, err
		}
	}
	return changes, nil
}

// due is when a, at its current escalation level, escalates.
func (m *Manager) due(a Alert, from time.Time) time.Time {
	route := m.opts.Route.Find(a)
	if route.Deadline <= 0 {
		return time.Time{}
	}
	due, err := m.opts.Calendar(a.Subject).Add(from, route.Deadline)
	if err != nil {
		m.log.Warn("alert: no deadline", "kind", a.Kind, "subject", a.Subject.Key(), "err", err)
		return time.Time{}
	}
	return due
}

// checkSiteOffline raises site_offline when every device of the site is
// offline. Called with mu held.
func (m *Manager) checkSiteOffline(ctx context.Context, s Subject, now time.Time) ([]change, error) {
	if m.opts.SiteDevices == nil {
		return nil, nil
	}
	total := m.opts.SiteDevices(s.Org, s.Site)
	if total < 2 || m.offlineAt(s.Org, s.Site) < total {
		return nil, nil
	}
	site := Subject{Org: s.Org, Site: s.Site}
	return m.raiseLocked(ctx, Finding{
		Kind: KindSiteOffline, Severity: SeverityCritical, Subject: site, Time: now,
		Message: fmt.Sprintf("All %d keypads at site %s are offline", total, s.Site),
		Hint:    "Check the site's network connection and power before the single devices.",
	}, now)
}

func (m *Manager) offlineAt(org, site string) int {
	n := 0
	for _, a := range m.open {
		if a.Kind == KindOffline && a.Subject.Device != "" && a.Subject.Org == org && a.Subject.Site == site {
			n++
		}
	}
	return n
}

// Resolve closes the open alert of kind for subject because its condition
// cleared. No open alert is not an error.
func (m *Manager) Resolve(ctx context.Context, kind Kind, subject Subject, reason string) error {
	now := m.now()
	m.mu.Lock()
	a, ok := m.open[string(kind)+"|"+subject.Key()]
	if !ok {
		m.mu.Unlock()
		return nil
	}
	changes, err := m.closeLocked(ctx, a, ActionResolved, "", reason, now)
	if err == nil && kind == KindOffline && subject.Device != "" {
		if site, ok := m.open[string(KindSiteOffline)+"|"+Subject{Org: subject.Org, Site: subject.Site}.Key()]; ok {
			more, e := m.closeLocked(ctx, site, ActionResolved, "", "device "+subject.Device+" is back", now)
			changes, err = append(changes, more...), e
		}
	}
	m.mu.Unlock()
	m.record(ctx, changes)
	return err
}

func (m *Manager) closeLocked(ctx context.Context, a *Alert, action Action, by, reason string, now time.Time) ([]change, error) {
	upd := cloneAlert(*a)
	upd.State, upd.ResolvedAt, upd.ResolvedBy, upd.Reason, upd.UpdatedAt = StateResolved, now, by, reason, now
	ev := Event{Time: now, Action: action, State: StateResolved, Actor: by, Comment: reason, Escalation: upd.Escalation}
	if err := m.opts.Store.Save(ctx, &upd, &ev); err != nil {
		return nil, fmt.Errorf("resolve: save: %w", err)
	}
	delete(m.open, a.Key())
	return []change{{upd, ev}}, nil
}

// Acknowledge marks alert id as taken by someone: it stops repeating and
// escalating. Acknowledging again replaces the comment.
func (m *Manager) Acknowledge(ctx context.Context, id int64, by, comment string) (Alert, error) {
	if by == "" {
		return Alert{}, fmt.Errorf("acknowledge: %w: who acknowledges is required", ErrInvalid)
	}
	now := m.now()
	m.mu.Lock()
	a, err := m.openByID(ctx, id)
	if err != nil {
		m.mu.Unlock()
		return Alert{}, fmt.Errorf("acknowledge %d: %w", id, err)
	}
	upd := cloneAlert(*a)
	upd.State, upd.AckedBy, upd.AckComment, upd.AckedAt, upd.UpdatedAt = StateAcknowledged, by, comment, now, now
	ev := Event{Time: now, Action: ActionAcknowledged, State: StateAcknowledged, Actor: by, Comment: comment, Escalation: upd.Escalation}
	if err := m.opts.Store.Save(ctx, &upd, &ev); err != nil {
		m.mu.Unlock()
		return Alert{}, fmt.Errorf("acknowledge %d: save: %w", id, err)
	}
	*a = upd
	m.mu.Unlock()
	m.record(ctx, []change{{upd, ev}})
	return upd, nil
}

// ResolveByHand closes alert id on someone's word.
func (m *Manager) ResolveByHand(ctx context.Context, id int64, by, comment string) (Alert, error) {
	if by == "" {
		return Alert{}, fmt.Errorf("resolve: %w: who resolves is required", ErrInvalid)
	}
	m.mu.Lock()
	a, err := m.openByID(ctx, id)
	if err != nil {
		m.mu.Unlock()
		return Alert{}, fmt.Errorf("resolve %d: %w", id, err)
	}
	changes, err := m.closeLocked(ctx, a, ActionResolved, by, comment, m.now())
	m.mu.Unlock()
	m.record(ctx, changes)
	if err != nil {
		return Alert{}, err
	}
	return changes[0].a, nil
}

// openByID finds an open alert; ErrResolved or ErrNotFound otherwise.
func (m *Manager) openByID(ctx context.Context, id int64) (*Alert, error) {
	for _, a := range m.open {
		if a.ID == id {
			return a, nil
		}
	}
	if _, err := m.opts.Store.Alert(ctx, id); err != nil {
		return nil, err
	}
	return nil, ErrResolved
}

// List returns the alerts f selects, most recently updated first.
func (m *Manager) List(ctx context.Context, f Filter) ([]Alert, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	list, err := m.opts.Store.Alerts(ctx, f)
	if err != nil {
		return nil, err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range list {
		list[i].MutedBy = ""
		if list[i].Open() {
			list[i].MutedBy = m.mutedBy(list[i], now)
		}
	}
	return list, nil
}

// Get returns one alert and its audit trail.
func (m *Manager) Get(ctx context.Context, id int64) (Alert, []Event, error) {
	a, err := m.opts.Store.Alert(ctx, id)
	if err != nil {
		return Alert{}, nil, err
	}
	evs, err := m.opts.Store.Events(ctx, id)
	return a, evs, err
}

// AddSilence stores s (a new ID and creation time are assigned when empty)
// and mutes what it matches from its start.
func (m *Manager) AddSilence(ctx context.Context, s Silence) (Silence, error) {
	now := m.now()
	if s.StartsAt.IsZero() {
		s.StartsAt = now
	}
	if err := s.Validate(); err != nil {
		return Silence{}, err
	}
	if s.EndsAt.Before(now) {
		return Silence{}, fmt.Errorf("%w: silence ends in the past", ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.ID == "" {
		m.seq++
		s.ID = fmt.Sprintf("s%x%04x", now.UnixNano(), m.seq&0xffff)
	}
	s.CreatedAt = now
	if err := m.opts.Store.SaveSilence(ctx, s); err != nil {
		return Silence{}, fmt.Errorf("add silence: %w", err)
	}
	m.silences = slices.DeleteFunc(m.silences, func(x Silence) bool { return x.ID == s.ID })
	m.silences = append(m.silences, s)
	return s, nil
}

// DeleteSilence removes a silence (ends it at once).
func (m *Manager) DeleteSilence(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.opts.Store.DeleteSilence(ctx, id); err != nil {
		return fmt.Errorf("delete silence %s: %w", id, err)
	}
	m.silences = slices.DeleteFunc(m.silences, func(x Silence) bool { return x.ID == id })
	return nil
}

// Silences returns the silences not yet ended.
func (m *Manager) Silences() []Silence {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Silence
	for _, s := range m.silences {
		if now.Before(s.EndsAt) {
			out = append(out, s)
		}
	}
	return out
}

// MutedBy says why a is muted at now ("silence <id>", "maintenance <name>",
// "inhibited by site_offline"), or "" when it is not. Called with mu held.
func (m *Manager) mutedBy(a Alert, now time.Time) string {
	for _, s := range m.silences {
		if s.Active(now) && s.Matchers.Match(a) {
			return "silence " + s.ID
		}
	}
	for _, w := range m.opts.Windows {
		if w.Matchers.Match(a) && w.Calendar.Open(now) {
			return "maintenance " + w.Name
		}
	}
	if a.Kind == KindOffline && a.Subject.Device != "" {
		if _, ok := m.open[string(KindSiteOffline)+"|"+Subject{Org: a.Subject.Org, Site: a.Subject.Site}.Key()]; ok {
			return "inhibited by " + string(KindSiteOffline)
		}
	}
	return ""
}

// CheckDeadlines escalates every firing alert whose deadline has passed to
// the next level of its route, and closes event-like alerts that have been
// quiet for their Expire time.
func (m *Manager) CheckDeadlines(ctx context.Context) error {
	now := m.now()
	var changes []change
	var errs []error
	m.mu.Lock()
	for _, a := range m.open {
		if d, ok := m.opts.Expire[a.Kind]; ok && d > 0 && !now.Before(a.LastSeen.Add(d)) {
			c, err := m.closeLocked(ctx, a, ActionExpired, "", fmt.Sprintf("no repeat for %s", d), now)
			changes, errs = append(changes, c...), append(errs, err)
			continue
		}
		if a.State != StateFiring || a.DueAt.IsZero() || now.Before(a.DueAt) {
			continue
		}
		upd := cloneAlert(*a)
		route := m.opts.Route.Find(upd)
		comment := "deadline passed; no further level to escalate to"
		if next := upd.Escalation + 1; next < len(route.Levels) {
			upd.Escalation = next
			upd.NotifiedAt = time.Time{} // the new level has heard nothing yet
			comment = fmt.Sprintf("deadline passed; now with level %d", next)
			upd.DueAt = m.due(upd, now)
		} else {
			upd.DueAt = time.Time{}
		}
		upd.UpdatedAt = now
		ev := Event{Time: now, Action: ActionEscalated, State: upd.State, Comment: comment, Escalation: upd.Escalation}
		if err := m.opts.Store.Save(ctx, &upd, &ev); err != nil {
			errs = append(errs, fmt.Errorf("escalate %d: %w", a.ID, err))
			continue
		}
		*a = upd
		changes = append(changes, change{upd, ev})
	}
	m.mu.Unlock()
	m.record(ctx, changes)
	return errors.Join(errs...)
}
