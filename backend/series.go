package backend

import (
	"fmt"

	"github.com/semko/semko/backend/health/seriesalert"
	"github.com/semko/semko/backend/intake/influx"
)

// newSeriesCheck builds the check of InfluxDB's series count; New adds it
// last, with the health checks: a running check raises, so it stops before
// the alert manager and the spool.
func (a *App) newSeriesCheck() error {
	c := a.cfg.Influx
	var err error
	a.series, err = influx.NewSeriesCheck(influx.SeriesCheckOptions{
		URL: c.URL, Token: c.Token, Database: c.Bucket, Limit: max(c.MaxSeries, 0), Every: c.SeriesCheckEvery,
		Writer: a.writer, Report: seriesalert.Reporter(a.raiser(), a.log.With("part", "series-alert")),
		Cluster: a.clusterJobs(), Logger: a.log.With("part", "series-check"), Registerer: a.metrics,
	})
	if err != nil {
		return fmt.Errorf("series check: %w", err)
	}
	return nil
}
