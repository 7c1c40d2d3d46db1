package backend

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/aggregate"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/notify/email"
	"github.com/semko/semko/backend/api"
	"github.com/semko/semko/backend/report"
	"github.com/semko/semko/backend/report/delivery"
	"github.com/semko/semko/backend/report/reportpage"
	"github.com/semko/semko/internal/influxdb"
)

// ReportsConfig is the `reports:` section: on-demand reports in the API
// and scheduled ones by e-mail.
type ReportsConfig struct {
	Disabled bool `yaml:"disabled"`
	// Timeout bounds building one report; default 60 s.
	Timeout time.Duration `yaml:"timeout"`
	// Store is the SQLite file of subscriptions and deliveries; default
	// <data_dir>/reports.db.
	Store string `yaml:"store"`
	// SendHour is when, in the scope's zone, a closed period's report is
	// sent (Monday for a week, the 1st for a month); default 7.
	SendHour int `yaml:"send_hour"`
}

// reportParts are the report builder, what it reads with, and the
// scheduled delivery (nil without SMTP).
type reportParts struct {
	builder *report.Builder
	db      *influxdb.Client
	store   deliveryStore
	job     *delivery.Job
	// aggregate is the job of aggregates.go, set there: its mark says how
	// far the builder may read aggregates.
	aggregate *aggregate.Job
	handler   *report.Handler // the API's, which the console page shares
}

// newReports builds the report builder (nothing when disabled). Its
// InfluxDB client is released when the supervisor stops.
func (a *App) newReports() error {
	c := a.cfg.Reports
	if c.Disabled {
		return nil
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	db, err := influxdb.New(influxdb.Options{
		URL: a.cfg.Influx.URL, Token: a.cfg.Influx.Token, Org: a.cfg.Influx.Org, Bucket: a.cfg.Influx.Bucket,
		Timeout: timeout,
	})
	if err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	a.sup.add("reports", resource{close: func() error { db.Close(); return nil }})
	// Long periods read the hourly and daily aggregates when the job
	// that writes them runs (aggregates.go).
	b := &report.Builder{DB: db, Aggregates: !a.cfg.Aggregates.Disabled, AggregatedUntil: func() time.Time {
		if a.reports.aggregate == nil {
			return time.Time{}
		}
		return a.reports.aggregate.Done()
	}}
	if a.alerts.store != nil {
		b.Alerts = a.alerts.store
	}
	a.reports = reportParts{builder: b, db: db}
	return a.newDelivery()
}

// newDelivery opens the subscription store and, when SMTP is configured,
// adds the delivery job to the supervisor. It sends through the same mail
// server as the alert notices (notify.smtp).
func (a *App) newDelivery() error {
	path := a.cfg.Reports.Store
	if path == "" {
		path = filepath.Join(a.cfg.DataDir, "reports.db")
	}
	store, err := a.openDeliveryStore(context.Background(), path)
	if err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	a.sup.add("report-store", resource{close: store.Close})
	a.reports.store = store
	c := a.cfg.Notify.SMTP
	if c.Host == "" {
		a.log.Info("reports: no notify.smtp, scheduled reports are not sent")
		return nil
	}
	pass := c.Password
	if pass == "" {
		pass = os.Getenv("SEMKO_SMTP_PASSWORD")
	}
	sender, err := email.NewSender(email.Config{
		Host: c.Host, Port: c.Port, Username: c.Username, Password: pass, Auth: c.Auth,
		From: cmp.Or(c.From, "Semko <semko@localhost>"), TLS: email.TLSMode(c.TLS), Timeout: cmp.Or(c.Timeout, time.Minute),
	}, a.log.With("part", "report-email"))
	if err != nil {
		return fmt.Errorf("reports smtp: %w", err)
	}
	job, err := delivery.New(delivery.Options{
		Store: store, Builder: a.reports.builder, Sender: sender, Zone: a.reportZone, SendHour: a.cfg.Reports.SendHour,
		Cluster: a.sharedStoreJobs(), Logger: a.log.With("part", "report-delivery"), Registerer: a.metrics,
	})
	if err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	a.reports.job = job
	a.sup.add("report-delivery", optional(a.log, "report delivery", job))
	return nil
}

// ReportSubscriptions is the store of report subscriptions (nil when
// reports are disabled): `make run` subscribes through it.
func (a *App) ReportSubscriptions() delivery.Store {
	if a.reports.store == nil {
		return nil
	}
	return a.reports.store
}

// reportZone is a report scope's time zone: its site's, else its
// organisation's, else UTC.
func (a *App) reportZone(org, site string) *time.Location {
	return a.siteZone(alert.Subject{Org: org, Site: site})
}

// reportRoutes mounts GET /api/v1/reports. The handler takes the caller
// from access.FromContext; a request without a principal passed the API's
// bearer token only, which is the bootstrap admin's.
func (a *App) reportRoutes() []api.Route {
	if a.reports.builder == nil {
		return nil
	}
	rejected := report.NewRejectedCounter()
	if err := a.metrics.Register(rejected); err != nil {
		a.log.Warn("reports: metric not registered", "err", err)
	}
	h := &report.Handler{Builder: a.reports.builder, Zone: a.reportZone, Log: a.log.With("part", "reports"), Rejected: rejected}
	a.reports.handler = h
	// No locator: the scope is in the query (org, site), and the handler
	// answers 404 for one outside the caller's scope.
	routes := []api.Route{{Pattern: "GET /api/v1/reports", Handler: h, Rule: access.Allow(access.Staff...)}}
	if a.reports.store == nil {
		return routes
	}
	// Subscriptions: each account its own, within its scope (the API
	// checks both; another account's is 404).
	subRejected := delivery.NewRejectedCounter()
	if err := a.metrics.Register(subRejected); err != nil {
		a.log.Warn("reports: metric not registered", "err", err)
	}
	subs := &delivery.API{Store: a.reports.store, Log: a.log.With("part", "report-subscriptions"), Rejected: subRejected}
	staff := access.Allow(access.Staff...)
	return append(routes,
		api.Route{Pattern: "GET /api/v1/report-subscriptions", Handler: http.HandlerFunc(subs.List), Rule: staff},
		api.Route{Pattern: "POST /api/v1/report-subscriptions", Handler: http.HandlerFunc(subs.Create), Rule: staff},
		api.Route{Pattern: "DELETE /api/v1/report-subscriptions/{id}", Handler: http.HandlerFunc(subs.Delete), Rule: staff})
}

// addReportPage adds the console's Reports page (a form; the file comes
// from the API's handler). Call it once the console exists.
func (a *App) addReportPage() error {
	if a.reports.handler == nil || a.console.console == nil {
		return nil
	}
	var subs delivery.Store
	if a.reports.store != nil {
		subs = a.reports.store
	}
	return reportpage.Register(reportpage.Options{
		Console: a.console.console, Reports: a.reports.handler, Subscriptions: subs,
		Places: func() []reportpage.Place {
			reg := a.registry.Current()
			var out []reportpage.Place
			names := map[string]string{}
			for _, o := range reg.Organisations() {
				names[o.ID] = cmp.Or(o.Name, o.ID)
				out = append(out, reportpage.Place{Org: o.ID, OrgName: names[o.ID]})
			}
			for _, s := range reg.Sites() {
				out = append(out, reportpage.Place{Org: s.Org, OrgName: cmp.Or(names[s.Org], s.Org), Site: s.ID, SiteName: cmp.Or(s.Name, s.ID)})
			}
			return out
		},
	})
}
