package backend

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"sync"
	"time"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/alertapi"
	"github.com/semko/semko/backend/alert/calendar"
	"github.com/semko/semko/backend/alert/points"
	"github.com/semko/semko/backend/alert/ratings"
	"github.com/semko/semko/backend/api"
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
		// nps_followup_overdue: a survey follow-up past its deadline
		// (backend/survey/engine), for the same person.
		Match:     alert.Matchers{alert.LabelKind: string(alert.KindNegativeVote) + "," + string(alert.KindPositiveStreak) + ",nps_followup_overdue"},
		Receivers: []string{alert.ReceiverResponsible},
		GroupWait: time.Minute, GroupInterval: 5 * time.Minute,
	}},
}

// alertParts are the alert manager, the rating watcher and the store
// they share (nil when alerts are disabled).
type alertParts struct {
	manager *alert.Manager
	ratings *ratings.Watcher
	store   alertStore
}

// newAlerts builds the alert manager and the rating watcher and adds them
// to the supervisor as one part: it runs both and closes their store when
// stopped. Stop it after MQTT (no more votes) and before the spool (state
// changes are recorded there).
func (a *App) newAlerts() error {
	c := a.cfg.Alerts
	if c.Disabled {
		return nil
	}
	reg := a.registry
	ctx := context.Background()
	path := c.Store
	if path == "" {
		path = filepath.Join(a.cfg.DataDir, "alerts.db")
	}
	store, err := a.openAlertStore(ctx, path)
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
	zones := map[string]string{}
	for _, s := range reg.Current().Sites() {
		zones[s.ID] = s.Timezone
	}
	cals, err := calendar.NewSites(c.Calendars.Default, c.Calendars.Sites, zones)
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
	maps.Copy(expire, c.Expire)
	// Replicas sharing the store in PostgreSQL each run a manager on it:
	// every change is then one transaction on the stored alert, and only
	// the schedule's leader dispatches and checks deadlines
	// (backend/alert/README.md, "Several replicas"). The leader is known
	// once the source is built, after this.
	shared := a.postgresDSN() != ""
	var leader func() bool
	if shared {
		leader = func() bool {
			if l := a.sharedStoreLeader(); l != nil {
				return l()
			}
			return true // no elector (embedded or single broker): every replica dispatches
		}
	}
	m, err := alert.New(ctx, alert.Options{
		Store: store, Route: route, Receivers: receivers,
		Calendar:    func(s alert.Subject) *calendar.Calendar { return cals.Of(s.Site) },
		Windows:     windows,
		SiteDevices: func(org, site string) int { return reg.Current().DevicesAt(site) },
		Expire:      expire, Record: points.New(a.spool, nil, nil).Record, Lang: c.Lang, Tick: c.Tick, CheckEvery: c.CheckEvery,
		Shared: shared, Leader: leader,
		Logger: a.log.With("part", "alerts"), Registerer: a.metrics,
	})
	if err != nil {
		return fail(fmt.Errorf("alert manager: %w", err))
	}
	// Replicas share the watcher's streaks and windows through the store
	// too: each takes only part of a site's votes.
	var rw ratings.Windows
	if ws, ok := store.(ratings.Windows); ok && shared {
		rw = ws
	}
	w, err := ratings.New(ratings.Options{
		Config: c.Ratings, Raiser: m, Registry: reg.Current, Windows: rw,
		Logger: a.log.With("part", "ratings"), Registerer: a.metrics,
	})
	if err != nil {
		return fail(fmt.Errorf("alerts ratings: %w", err))
	}
	a.alerts = alertParts{manager: m, ratings: w, store: store}
	a.sup.add("alerts", &a.alerts)
	return nil
}

// Run runs the manager and the watcher until ctx ends, then closes the
// store.
func (p *alertParts) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Go(func() {
		defer cancel() // a failed manager stops the watcher too
		errc <- p.manager.Run(ctx)
	})
	wg.Go(func() { _ = p.ratings.Run(ctx) })
	wg.Wait()
	return errors.Join(<-errc, p.Close())
}

// Close closes the store (Run does it on return).
func (p *alertParts) Close() error {
	if err := p.store.Close(); err != nil {
		return fmt.Errorf("alert store close: %w", err)
	}
	return nil
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
