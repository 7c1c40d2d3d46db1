package backend

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/calendar"
	"github.com/semko/semko/backend/alert/points"
	"github.com/semko/semko/backend/api"
	"github.com/semko/semko/backend/incident"
	"github.com/semko/semko/backend/incident/incidentapi"
	"github.com/semko/semko/backend/incident/mailintake"
)

// incidentParts are the incident desk, its store and its e-mail intake
// (nil when the desk is disabled).
type incidentParts struct {
	desk  *incident.Desk
	store incident.Store
	mail  *mailintake.Server // nil without incidents.email.addr
}

// newIncidents builds the incident desk from the `incidents:` section.
// Deadlines count on the alerts' business calendars (the same per-site
// calendars); missed ones are raised to the alert manager, so they follow
// its routes and notices. Call it after newAlerts.
func (a *App) newIncidents() error {
	c := a.cfg.Incidents
	if c.Disabled {
		return nil
	}
	ctx := context.Background()
	path := c.Store
	if path == "" {
		path = filepath.Join(a.cfg.DataDir, "incidents.db")
	}
	filesDir := c.FilesDir
	if filesDir == "" {
		filesDir = filepath.Join(a.cfg.DataDir, "incident-files")
	}
	max := c.MaxAttachment
	if max <= 0 {
		max = incident.DefaultMaxAttachment
	}
	reg := a.registry
	zones := map[string]string{}
	for _, s := range reg.Current().Sites() {
		zones[s.ID] = s.Timezone
	}
	cals, err := calendar.NewSites(a.cfg.Alerts.Calendars.Default, a.cfg.Alerts.Calendars.Sites, zones)
	if err != nil {
		return fmt.Errorf("incidents: %w", err)
	}
	store, files, err := a.openIncidents(ctx, path, filesDir, max)
	if err != nil {
		return err
	}
	var raiser alert.Raiser = points.New(a.spool, nil, a.log.With("part", "incidents"))
	if a.alerts.manager != nil {
		raiser = a.alerts.manager
	}
	desk, err := incident.New(incident.Options{
		Config: c, Store: store, Files: files, Calendar: cals.Of,
		Known: func(org, site string) bool {
			s, ok := reg.Current().Site(site)
			return ok && s.Org == org
		},
		Raiser: raiser, Leader: a.sharedStoreLeader(), Spool: a.spool, Clock: c.Clock, Logger: a.log.With("part", "incidents"), Registerer: a.metrics,
	})
	if err != nil {
		store.Close()
		return err
	}
	a.desk = incidentParts{desk: desk, store: store}
	if c.Email.Addr != "" {
		a.desk.mail, err = mailintake.New(mailintake.Options{Config: c.Email, Desk: desk,
			Logger: a.log.With("part", "incident-mail"), Registerer: a.metrics})
		if err == nil {
			err = a.desk.mail.Listen() // bound now, so a bad address fails New
		}
		if err != nil {
			store.Close()
			return err
		}
	}
	a.sup.add("incidents", &a.desk)
	return nil
}

// Run checks deadlines and retention and serves the e-mail intake until
// ctx ends, then closes the store.
func (p *incidentParts) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mailErr error
	var wg sync.WaitGroup
	if p.mail != nil {
		wg.Go(func() {
			defer cancel() // a failed listener stops the desk too, and the supervisor hears of it
			mailErr = p.mail.Run(ctx)
		})
	}
	err := errors.Join(p.desk.Run(ctx))
	cancel()
	wg.Wait()
	err = errors.Join(err, mailErr)
	if cerr := p.store.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("incident store close: %w", cerr))
	}
	return err
}

// incidentRoutes are the desk's API endpoints; the access router gives
// each request its principal, and the desk checks the scope.
func (a *App) incidentRoutes() ([]api.Route, error) {
	if a.desk.desk == nil {
		return nil, nil
	}
	var alerts incidentapi.Alerts
	if a.alerts.manager != nil {
		alerts = a.alerts.manager
	}
	return incidentapi.Routes(incidentapi.Options{Desk: a.desk.desk, Alerts: alerts,
		Logger: a.log.With("part", "incidents-api"), Registerer: a.metrics})
}

// Incidents is the incident desk (nil when disabled).
func (a *App) Incidents() *incident.Desk { return a.desk.desk }

// IncidentMailAddr is the e-mail intake's SMTP address ("" when off).
func (a *App) IncidentMailAddr() string {
	if a.desk.mail == nil {
		return ""
	}
	return a.desk.mail.Addr()
}
