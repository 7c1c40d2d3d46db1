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
	// Shared says that other managers (backend replicas) use the same
	// store. The store is then the truth and must be an Updater: every
	// change reads, decides and writes its alert in one store transaction,
	// and Flush and CheckDeadlines reload the open alerts and silences
	// before they act (README, "Several replicas").
	Shared bool
	// Leader, when set, says whether this manager may dispatch notices and
	// check deadlines now: the cluster's schedule leader. Flush and
	// CheckDeadlines do nothing else while it reports false (a shared
	// manager still reloads), and forget their group timing, which the
	// alerts' notified times carry to the next leader.
	Leader func() bool
}

// Manager keeps the alerts: one open alert per kind and subject, its state
// and audit trail, and the pipeline that turns alerts into notices (mute,
// group, route, notify with retry, repeat, escalate). It implements Raiser.
//
// On its own store the memory is the truth and the store is written
// through. With Options.Shared (several replicas on one database) the store
// is the truth and the memory a copy reloaded before each dispatch and
// deadline check; every change is decided on the stored alert.
type Manager struct {
	opts  Options
	log   *slog.Logger
	clock clockwork.Clock
	m     *metrics
	queue chan Notice
	upd   Updater // the shared store (Options.Shared), else nil

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
	if opts.Shared {
		u, ok := opts.Store.(Updater)
		if !ok {
			return nil, fmt.Errorf("alert manager: a shared store must be an alert.Updater; %T is not", opts.Store)
		}
		m.upd = u
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
	if m.upd != nil {
		return m.raiseShared(ctx, f, now)
	}
	key := f.Key()
	if a, ok := m.open[key]; ok {
		upd := seenAgain(*a, f, now)
		if err := m.opts.Store.Save(ctx, &upd, nil); err != nil {
			return nil, fmt.Errorf("raise: save: %w", err)
		}
		*a = upd
		return nil, nil
	}
	a, ev := m.opened(f, now)
	if err := m.opts.Store.Save(ctx, &a, &ev); err != nil {
		return nil, fmt.Errorf("raise: save: %w", err)
	}
	m.open[key] = &a
	return m.raised(ctx, a, ev, now)
}

// raiseShared is raiseLocked on a shared store: the open alert of the key
// is found and counted, or inserted, under the store's lock on the key.
func (m *Manager) raiseShared(ctx context.Context, f Finding, now time.Time) ([]change, error) {
	a, ev, err := m.apply(ctx, Which{Kind: f.Kind, Subject: f.Subject}, func(cur *Alert) (*Alert, *Event, error) {
		if cur != nil {
			upd := seenAgain(*cur, f, now)
			return &upd, nil, nil
		}
		a, ev := m.opened(f, now)
		return &a, &ev, nil
	})
	if err != nil {
		return nil, fmt.Errorf("raise: save: %w", err)
	}
	if ev == nil {
		return nil, nil
	}
	return m.raised(ctx, *a, *ev, now)
}

// seenAgain is open alert a raised again by f.
func seenAgain(a Alert, f Finding, now time.Time) Alert {
	upd := cloneAlert(a)
	upd.Count++
	upd.LastSeen, upd.UpdatedAt = f.Time, now
	upd.Message, upd.Hint, upd.Details, upd.Severity = f.Message, f.Hint, f.Details, f.Severity
	return upd
}

// opened is the new alert for f and the event that raises it.
func (m *Manager) opened(f Finding, now time.Time) (Alert, Event) {
	a := Alert{
		Kind: f.Kind, Severity: f.Severity, Subject: f.Subject, State: StateFiring,
		Message: f.Message, Hint: f.Hint, Details: f.Details, Count: 1,
		StartsAt: f.Time, LastSeen: f.Time, UpdatedAt: now,
	}
	a.DueAt = m.due(a, now)
	return a, Event{Time: now, Action: ActionRaised, State: StateFiring, Comment: f.Message}
}

// raised follows a new alert: its change, and site_offline when it was a
// site's last device to go offline.
func (m *Manager) raised(ctx context.Context, a Alert, ev Event, now time.Time) ([]change, error) {
	changes := []change{{a, ev}}
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
	if total < 2 {
		return nil, nil
	}
	offline, err := m.offlineAt(ctx, s.Org, s.Site)
	if err != nil || offline < total {
		return nil, err
	}
	site := Subject{Org: s.Org, Site: s.Site}
	return m.raiseLocked(ctx, Finding{
		Kind: KindSiteOffline, Severity: SeverityCritical, Subject: site, Time: now,
		Message: fmt.Sprintf("All %d keypads at site %s are offline", total, s.Site),
		Hint:    "Check the site's network connection and power before the single devices.",
	}, now)
}

// offlineAt counts the devices of a site with an open offline alert: in
// memory, or in the store when it is shared (other replicas raise too).
func (m *Manager) offlineAt(ctx context.Context, org, site string) (int, error) {
	list := m.openList()
	if m.upd != nil {
		var err error
		if list, err = m.opts.Store.Alerts(ctx, Filter{State: "open", Kind: KindOffline, Org: org, Site: site}); err != nil {
			return 0, fmt.Errorf("count offline devices: %w", err)
		}
	}
	n := 0
	for _, a := range list {
		if a.Kind == KindOffline && a.Subject.Device != "" && a.Subject.Org == org && a.Subject.Site == site {
			n++
		}
	}
	return n, nil
}

// openList is a copy of the open alerts in memory. Called with mu held.
func (m *Manager) openList() []Alert {
	out := make([]Alert, 0, len(m.open))
	for _, a := range m.open {
		out = append(out, cloneAlert(*a))
	}
	return out
}

// Resolve closes the open alert of kind for subject because its condition
// cleared. No open alert is not an error.
func (m *Manager) Resolve(ctx context.Context, kind Kind, subject Subject, reason string) error {
	now := m.now()
	m.mu.Lock()
	if m.upd != nil {
		changes, err := m.resolveShared(ctx, kind, subject, reason, now)
		m.mu.Unlock()
		m.record(ctx, changes)
		return err
	}
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

// resolveShared is Resolve on a shared store.
func (m *Manager) resolveShared(ctx context.Context, kind Kind, subject Subject, reason string, now time.Time) ([]change, error) {
	closeOpen := func(w Which, reason string) ([]change, error) {
		a, ev, err := m.apply(ctx, w, func(cur *Alert) (*Alert, *Event, error) {
			if cur == nil {
				return nil, nil, nil
			}
			a, ev := closed(*cur, ActionResolved, "", reason, now)
			return &a, &ev, nil
		})
		if err != nil {
			return nil, fmt.Errorf("resolve: save: %w", err)
		}
		if a == nil {
			return nil, nil
		}
		return []change{{*a, *ev}}, nil
	}
	changes, err := closeOpen(Which{Kind: kind, Subject: subject}, reason)
	if err != nil || len(changes) == 0 || kind != KindOffline || subject.Device == "" {
		return changes, err
	}
	more, err := closeOpen(Which{Kind: KindSiteOffline, Subject: Subject{Org: subject.Org, Site: subject.Site}}, "device "+subject.Device+" is back")
	return append(changes, more...), err
}

// closed is a resolved at now, and the event that says how.
func closed(a Alert, action Action, by, reason string, now time.Time) (Alert, Event) {
	upd := cloneAlert(a)
	upd.State, upd.ResolvedAt, upd.ResolvedBy, upd.Reason, upd.UpdatedAt = StateResolved, now, by, reason, now
	return upd, Event{Time: now, Action: action, State: StateResolved, Actor: by, Comment: reason, Escalation: upd.Escalation}
}

func (m *Manager) closeLocked(ctx context.Context, a *Alert, action Action, by, reason string, now time.Time) ([]change, error) {
	upd, ev := closed(*a, action, by, reason, now)
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
	if m.upd != nil {
		a, ev, err := m.applyOpen(ctx, id, func(cur Alert) (Alert, Event) { return acked(cur, by, comment, now) })
		m.mu.Unlock()
		if err != nil {
			return Alert{}, fmt.Errorf("acknowledge %d: %w", id, err)
		}
		m.record(ctx, []change{{a, ev}})
		return a, nil
	}
	a, err := m.openByID(ctx, id)
	if err != nil {
		m.mu.Unlock()
		return Alert{}, fmt.Errorf("acknowledge %d: %w", id, err)
	}
	upd, ev := acked(*a, by, comment, now)
	if err := m.opts.Store.Save(ctx, &upd, &ev); err != nil {
		m.mu.Unlock()
		return Alert{}, fmt.Errorf("acknowledge %d: save: %w", id, err)
	}
	*a = upd
	m.mu.Unlock()
	m.record(ctx, []change{{upd, ev}})
	return upd, nil
}

// acked is a acknowledged at now, and the event that says by whom.
func acked(a Alert, by, comment string, now time.Time) (Alert, Event) {
	upd := cloneAlert(a)
	upd.State, upd.AckedBy, upd.AckComment, upd.AckedAt, upd.UpdatedAt = StateAcknowledged, by, comment, now, now
	return upd, Event{Time: now, Action: ActionAcknowledged, State: StateAcknowledged, Actor: by, Comment: comment, Escalation: upd.Escalation}
}

// ResolveByHand closes alert id on someone's word.
func (m *Manager) ResolveByHand(ctx context.Context, id int64, by, comment string) (Alert, error) {
	if by == "" {
		return Alert{}, fmt.Errorf("resolve: %w: who resolves is required", ErrInvalid)
	}
	now := m.now()
	m.mu.Lock()
	if m.upd != nil {
		a, ev, err := m.applyOpen(ctx, id, func(cur Alert) (Alert, Event) { return closed(cur, ActionResolved, by, comment, now) })
		m.mu.Unlock()
		if err != nil {
			return Alert{}, fmt.Errorf("resolve %d: %w", id, err)
		}
		m.record(ctx, []change{{a, ev}})
		return a, nil
	}
	a, err := m.openByID(ctx, id)
	if err != nil {
		m.mu.Unlock()
		return Alert{}, fmt.Errorf("resolve %d: %w", id, err)
	}
	changes, err := m.closeLocked(ctx, a, ActionResolved, by, comment, now)
	m.mu.Unlock()
	m.record(ctx, changes)
	if err != nil {
		return Alert{}, err
	}
	return changes[0].a, nil
}

// applyOpen changes open alert id in the shared store by fn; ErrResolved
// or ErrNotFound when it is not open. Called with mu held.
func (m *Manager) applyOpen(ctx context.Context, id int64, fn func(Alert) (Alert, Event)) (Alert, Event, error) {
	a, ev, err := m.apply(ctx, Which{ID: id}, func(cur *Alert) (*Alert, *Event, error) {
		switch {
		case cur == nil:
			return nil, nil, ErrNotFound
		case !cur.Open():
			return nil, nil, ErrResolved
		}
		a, ev := fn(*cur)
		return &a, &ev, nil
	})
	if err != nil {
		return Alert{}, Event{}, err
	}
	return *a, *ev, nil
}

// apply changes the alert w names in the shared store: fn sees the stored
// alert (nil when none) and returns the change, or nil for none. What fn
// saw, and then what it wrote, replace the memory's copy. Called with mu
// held.
func (m *Manager) apply(ctx context.Context, w Which, fn func(cur *Alert) (*Alert, *Event, error)) (*Alert, *Event, error) {
	var called bool
	var seen, out *Alert
	var ev *Event
	err := m.upd.Update(ctx, w, func(cur *Alert) (*Alert, *Event, error) {
		called = true
		if cur != nil {
			c := cloneAlert(*cur)
			seen = &c
		}
		var err error
		out, ev, err = fn(cur)
		return out, ev, err
	})
	switch {
	case seen != nil:
		m.mirror(*seen)
	case called && w.ID == 0:
		delete(m.open, string(w.Kind)+"|"+w.Subject.Key()) // resolved elsewhere
	}
	if err != nil {
		return nil, nil, err
	}
	if out != nil {
		m.mirror(*out)
	}
	return out, ev, nil
}

// mirror puts a copy of stored alert a in memory, or takes it out when it
// is resolved. Called with mu held.
func (m *Manager) mirror(a Alert) {
	key := a.Key()
	if a.Open() {
		c := cloneAlert(a)
		m.open[key] = &c
		return
	}
	if cur, ok := m.open[key]; ok && cur.ID == a.ID {
		delete(m.open, key)
	}
}

// reload replaces the open alerts and silences in memory with the shared
// store's. Of two open alerts with one key (opened by replicas before
// Updater), the older is kept, as Update finds it. Called with mu held.
func (m *Manager) reload(ctx context.Context) error {
	open, err := m.opts.Store.OpenAlerts(ctx)
	if err != nil {
		return fmt.Errorf("reload open alerts: %w", err)
	}
	silences, err := m.opts.Store.Silences(ctx)
	if err != nil {
		return fmt.Errorf("reload silences: %w", err)
	}
	m.open = make(map[string]*Alert, len(open))
	for i := range open {
		a := &open[i]
		if old, ok := m.open[a.Key()]; ok && old.ID < a.ID {
			continue
		}
		m.open[a.Key()] = a
	}
	m.silences = silences
	return nil
}

// leading says whether this manager dispatches and checks deadlines now
// (Options.Leader); a follower forgets its group timing. Called with mu
// held.
func (m *Manager) leading() bool {
	if m.opts.Leader == nil || m.opts.Leader() {
		return true
	}
	clear(m.groups)
	return false
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
	if m.upd != nil {
		if err := m.reload(ctx); err != nil { // for muted_by
			m.log.Warn("alert: list", "err", err)
		}
	}
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
	if m.upd != nil {
		changes, err := m.checkDeadlinesShared(ctx, now)
		m.mu.Unlock()
		m.record(ctx, changes)
		return err
	}
	if !m.leading() {
		m.mu.Unlock()
		return nil
	}
	for _, a := range m.open {
		if d, ok := m.opts.Expire[a.Kind]; ok && d > 0 && !now.Before(a.LastSeen.Add(d)) {
			c, err := m.closeLocked(ctx, a, ActionExpired, "", fmt.Sprintf("no repeat for %s", d), now)
			changes, errs = append(changes, c...), append(errs, err)
			continue
		}
		if a.State != StateFiring || a.DueAt.IsZero() || now.Before(a.DueAt) {
			continue
		}
		upd, ev := m.escalated(*a, now)
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

// escalated is firing alert a past its deadline at now: with the next
// level of its route, or overdue at the last.
func (m *Manager) escalated(a Alert, now time.Time) (Alert, Event) {
	upd := cloneAlert(a)
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
	return upd, Event{Time: now, Action: ActionEscalated, State: upd.State, Comment: comment, Escalation: upd.Escalation}
}

// checkDeadlinesShared is CheckDeadlines on a shared store: it reloads the
// open alerts, and each expiry or escalation is decided again on the
// stored alert, so one acknowledged or escalated on another replica
// since is left alone. Called with mu held.
func (m *Manager) checkDeadlinesShared(ctx context.Context, now time.Time) ([]change, error) {
	if err := m.reload(ctx); err != nil {
		return nil, err
	}
	if !m.leading() {
		return nil, nil
	}
	var changes []change
	var errs []error
	for _, a := range m.openList() {
		var fn func(cur *Alert) (*Alert, *Event, error)
		what := "escalate"
		if d, ok := m.opts.Expire[a.Kind]; ok && d > 0 && !now.Before(a.LastSeen.Add(d)) {
			what = "expire"
			fn = func(cur *Alert) (*Alert, *Event, error) {
				if cur == nil || !cur.Open() || now.Before(cur.LastSeen.Add(d)) {
					return nil, nil, nil
				}
				c, ev := closed(*cur, ActionExpired, "", fmt.Sprintf("no repeat for %s", d), now)
				return &c, &ev, nil
			}
		} else if a.State == StateFiring && !a.DueAt.IsZero() && !now.Before(a.DueAt) {
			fn = func(cur *Alert) (*Alert, *Event, error) {
				if cur == nil || cur.State != StateFiring || cur.DueAt.IsZero() || now.Before(cur.DueAt) || cur.Escalation != a.Escalation {
					return nil, nil, nil
				}
				c, ev := m.escalated(*cur, now)
				return &c, &ev, nil
			}
		} else {
			continue
		}
		upd, ev, err := m.apply(ctx, Which{ID: a.ID}, fn)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %d: %w", what, a.ID, err))
			continue
		}
		if upd != nil {
			changes = append(changes, change{*upd, *ev})
		}
	}
	return changes, errors.Join(errs...)
}
