package backend

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/alertapi"
	"github.com/semko/semko/backend/alert/calendar"
	"github.com/semko/semko/backend/alert/ratings"
	"github.com/semko/semko/backend/alert/sqlite"
	"github.com/semko/semko/backend/api"
	"github.com/semko/semko/backend/intake/influx"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/protocol"
)

// AlertsConfig is the `alerts:` section: who hears about what, when it
// escalates, and what a negative rating is.
type AlertsConfig struct {
	Disabled bool `yaml:"disabled"`
	// Store is the SQLite file of alerts, audit trail and silences.
	// Default <data_dir>/alerts.db.
	Store string `yaml:"store"`
	// Lang is the notice language for receivers that name none (en, bg, ru).
	Lang      string           `yaml:"lang"`
	Receivers []alert.Receiver `yaml:"receivers"`
	// Route is the routing tree. Left empty, negative votes and
	// recognition go to the counter's responsible person and nothing else
	// is sent. The receiver "responsible" always means that person.
	Route alert.RouteConfig `yaml:"route"`
	// Calendars count deadlines in working hours. A calendar without a
	// timezone takes the site's from the fleet. Default: Monday to Friday
	// 09:00-18:00 in the site's zone.
	Calendars struct {
		Default calendar.Spec            `yaml:"default"`
		Sites   map[string]calendar.Spec `yaml:"sites"`
	} `yaml:"calendars"`
	// Maintenance windows mute what they match while their calendar is
	// open (hours are the window, e.g. {"sun": "00:00-06:00"}).
	Maintenance []MaintenanceConfig `yaml:"maintenance"`
	// Expire closes event-like alerts after this long without a repeat.
	// Defaults: negative_vote 30m, negative_streak and positive_streak 2h.
	Expire  map[alert.Kind]time.Duration `yaml:"expire"`
	Ratings ratings.Config               `yaml:"ratings"`
	// Tick is how often notices are checked; default 1s.
	Tick time.Duration `yaml:"tick"`
	// CheckEvery is how often deadlines are checked; default 1m.
	CheckEvery time.Duration `yaml:"check_every"`
}

// MaintenanceConfig is one recurring maintenance window.
type MaintenanceConfig struct {
	Name     string         `yaml:"name"`
	Match    alert.Matchers `yaml:"match"`
	Calendar calendar.Spec  `yaml:"calendar"`
}

// defaultRoute sends the rating alerts to the responsible person and
// groups several negative votes at one counter within a minute into one
// notice.
var defaultRoute = alert.RouteConfig{
	Routes: []alert.RouteConfig{{
		Match:     alert.Matchers{alert.LabelKind: string(alert.KindNegativeVote) + "," + string(alert.KindPositiveStreak)},
		Receivers: []string{alert.ReceiverResponsible},
		GroupWait: time.Minute, GroupInterval: 5 * time.Minute,
	}},
}

// alertParts are the alert manager and the rating watcher (nil when
// alerts are disabled).
type alertParts struct {
	manager *alert.Manager
	ratings *ratings.Watcher
	store   *sqlite.Store
	wg      sync.WaitGroup
	stop    context.CancelFunc
}

func (a *App) newAlerts(reg *registry.Store) error {
	c := a.cfg.Alerts
	if c.Disabled {
		return nil
	}
	ctx := context.Background()
	path := c.Store
	if path == "" {
		path = filepath.Join(a.cfg.DataDir, "alerts.db")
	}
	store, err := sqlite.Open(ctx, path)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		store.Close()
		return err
	}
	receivers := map[string]alert.Receiver{}
	for _, r := range c.Receivers {
		if r.Name == "" || r.Name == alert.ReceiverResponsible {
			return fail(fmt.Errorf("alerts: receiver name %q is empty or reserved", r.Name))
		}
		receivers[r.Name] = r
	}
	rc := c.Route
	if len(rc.Receivers) == 0 && len(rc.Routes) == 0 && len(rc.Escalate) == 0 {
		rc.Routes = defaultRoute.Routes
	}
	route, err := alert.NewRoute(rc, receivers)
	if err != nil {
		return fail(fmt.Errorf("alerts route: %w", err))
	}
	cals, err := newCalendars(c.Calendars.Default, c.Calendars.Sites, reg.Current())
	if err != nil {
		return fail(err)
	}
	var windows []alert.MaintenanceWindow
	for _, w := range c.Maintenance {
		cal, err := calendar.Parse(w.Calendar)
		if err != nil {
			return fail(fmt.Errorf("alerts maintenance %q: %w", w.Name, err))
		}
		if err := w.Match.Check(); err != nil {
			return fail(fmt.Errorf("alerts maintenance %q: %w", w.Name, err))
		}
		windows = append(windows, alert.MaintenanceWindow{Name: w.Name, Matchers: w.Match, Calendar: cal})
	}
	expire := map[alert.Kind]time.Duration{
		alert.KindNegativeVote: 30 * time.Minute, alert.KindNegativeStreak: 2 * time.Hour, alert.KindPositiveStreak: 2 * time.Hour,
	}
	for k, d := range c.Expire {
		expire[k] = d
	}
	m, err := alert.New(ctx, alert.Options{
		Store: store, Route: route, Receivers: receivers, Calendar: cals.of, Windows: windows,
		SiteDevices: func(org, site string) int { return devicesAt(reg.Current(), site) },
		Expire:      expire, Record: a.recordAlert, Lang: c.Lang, Tick: c.Tick, CheckEvery: c.CheckEvery,
		Logger: a.log.With("part", "alerts"), Registerer: a.metrics,
	})
	if err != nil {
		return fail(fmt.Errorf("alert manager: %w", err))
	}
	w, err := ratings.New(ratings.Options{
		Config: c.Ratings, Raiser: m, Registry: reg.Current,
		Logger: a.log.With("part", "ratings"), Registerer: a.metrics,
	})
	if err != nil {
		return fail(fmt.Errorf("alerts ratings: %w", err))
	}
	a.alerts.manager, a.alerts.ratings, a.alerts.store = m, w, store
	return nil
}

// recordAlert writes the state change as an `alert` point through the
// durable spool, for Grafana annotations.
func (a *App) recordAlert(ctx context.Context, al alert.Alert, ev alert.Event) error {
	msg := al.Message
	switch ev.Action {
	case alert.ActionAcknowledged, alert.ActionResolved, alert.ActionEscalated, alert.ActionExpired:
		msg = string(ev.Action)
		if ev.Actor != "" {
			msg += " by " + ev.Actor
		}
		if ev.Comment != "" {
			msg += ": " + ev.Comment
		}
	}
	line := influx.AlertLine(nil, influx.Alert{
		Kind: string(al.Kind), Severity: string(al.Severity), State: string(al.State),
		Org: al.Subject.Org, Site: al.Subject.Site, Device: al.Subject.Device, Message: msg, Time: ev.Time,
	})
	return a.spool.Append(ctx, line)
}

func devicesAt(r *registry.Registry, site string) int {
	n := 0
	for _, c := range r.Counters() {
		if c.Site == site && c.Device != "" {
			n++
		}
	}
	return n
}

// calendars resolves a subject's business calendar: the site's own, else
// the default in the site's time zone.
type calendars struct {
	bySite map[string]*calendar.Calendar
	def    *calendar.Calendar
}

func newCalendars(def calendar.Spec, sites map[string]calendar.Spec, reg *registry.Registry) (*calendars, error) {
	if len(def.Hours) == 0 {
		def.Hours = map[string]string{"mon-fri": "09:00-18:00"}
	}
	cs := &calendars{bySite: map[string]*calendar.Calendar{}}
	var err error
	if cs.def, err = calendar.Parse(def); err != nil {
		return nil, fmt.Errorf("alerts calendar default: %w", err)
	}
	for _, s := range reg.Sites() {
		spec, own := sites[s.ID]
		if !own {
			spec = def
		}
		if spec.Timezone == "" {
			spec.Timezone = s.Timezone
		}
		if cs.bySite[s.ID], err = calendar.Parse(spec); err != nil {
			return nil, fmt.Errorf("alerts calendar of site %s: %w", s.ID, err)
		}
	}
	for id := range sites {
		if cs.bySite[id] == nil {
			return nil, fmt.Errorf("alerts calendar: site %q is not in the fleet", id)
		}
	}
	return cs, nil
}

func (cs *calendars) of(s alert.Subject) *calendar.Calendar {
	if c := cs.bySite[s.Site]; c != nil {
		return c
	}
	return cs.def
}

// onVote is ingest's hook: nil when alerts are disabled.
func (a *App) onVote() func(protocol.Vote, registry.Placement) {
	if a.alerts.ratings == nil {
		return nil
	}
	return a.alerts.ratings.OnVote
}

// alertRoutes are the alert endpoints for the API.
func (a *App) alertRoutes() []api.Route {
	if a.alerts.manager == nil {
		return nil
	}
	return alertapi.Routes(a.alerts.manager, a.log.With("part", "alerts-api"))
}

// startAlerts runs the manager and the watcher until stopAlerts.
func (a *App) startAlerts(ctx context.Context) {
	if a.alerts.manager == nil {
		return
	}
	ctx, a.alerts.stop = context.WithCancel(ctx)
	a.alerts.wg.Go(func() {
		if err := a.alerts.manager.Run(ctx); err != nil {
			a.log.Error("alert manager stopped", "err", err)
		}
	})
	a.alerts.wg.Go(func() { a.alerts.ratings.Run(ctx) })
}

// stopAlerts stops both and closes the store. Call it after the broker is
// closed (no more votes) and before the spool is (state changes go there).
func (a *App) stopAlerts() error {
	if a.alerts.manager == nil {
		return nil
	}
	if a.alerts.stop != nil {
		a.alerts.stop()
	}
	a.alerts.wg.Wait()
	if err := a.alerts.store.Close(); err != nil {
		return fmt.Errorf("alert store close: %w", err)
	}
	return nil
}

// Alerts is the alert manager other parts raise findings with (nil when
// alerts are disabled).
func (a *App) Alerts() *alert.Manager { return a.alerts.manager }

// AddNotifier adds a notification channel (e-mail, webhook, MQTT) to the
// alert manager. Call it before Run.
func (a *App) AddNotifier(n alert.Notifier) error {
	if a.alerts.manager == nil {
		return errors.New("alerts are disabled")
	}
	a.alerts.manager.AddNotifier(n)
	return nil
}
