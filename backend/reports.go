package backend

import (
	"fmt"
	"time"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/api"
	"github.com/semko/semko/backend/report"
	"github.com/semko/semko/internal/influxdb"
)

// ReportsConfig is the `reports:` section: on-demand reports in the API.
type ReportsConfig struct {
	Disabled bool `yaml:"disabled"`
	// Timeout bounds building one report; default 60 s.
	Timeout time.Duration `yaml:"timeout"`
}

// reportParts are the report builder and what it reads with.
type reportParts struct {
	builder *report.Builder
	db      *influxdb.Client
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
	b := &report.Builder{DB: db}
	if a.alerts.store != nil {
		b.Alerts = a.alerts.store
	}
	a.reports = reportParts{builder: b, db: db}
	return nil
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
	return []api.Route{{Pattern: "GET /api/v1/reports", Handler: h}}
}
