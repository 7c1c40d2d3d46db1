package backend

import (
	"fmt"
	"time"

	"github.com/semko/semko/backend/rollup"
)

// RollupConfig schedules the figures dashboards cannot compute with one
// InfluxQL query: rankings shrunk toward the overall mean, NPS, participation
// by hour of week. They are written back as `rollup` points.
type RollupConfig struct {
	Disabled    bool          `yaml:"disabled"`
	Every       time.Duration `yaml:"every"`        // default 5m
	Window      time.Duration `yaml:"window"`       // default 720h (30 days)
	PriorWeight float64       `yaml:"prior_weight"` // votes' worth of the overall mean a small sample is pulled toward; default 20
	TimeZone    string        `yaml:"time_zone"`    // for the hour-of-week heatmap; default the machine's
}

// newRollup builds the rollup job and adds it to the supervisor (nothing
// when disabled); a job that cannot start is logged and the backend runs
// on without it.
func (a *App) newRollup() error {
	c := a.cfg.Rollup
	if c.Disabled {
		return nil
	}
	loc := time.Local
	if c.TimeZone != "" {
		var err error
		if loc, err = time.LoadLocation(c.TimeZone); err != nil {
			return fmt.Errorf("rollup time_zone: %w", err)
		}
	}
	job, err := rollup.New(rollup.Options{
		URL: a.cfg.Influx.URL, Token: a.cfg.Influx.Token, Org: a.cfg.Influx.Org, Bucket: a.cfg.Influx.Bucket,
		Every: c.Every, Window: c.Window, PriorWeight: c.PriorWeight, Location: loc,
		Cluster: a.clusterJobs(), Logger: a.log.With("part", "rollup"), Registerer: a.metrics,
	})
	if err != nil {
		return err
	}
	a.sup.add("rollup", optional(a.log, "rollup job", job))
	return nil
}
