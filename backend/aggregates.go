package backend

import (
	"path/filepath"
	"time"

	"github.com/semko/semko/backend/aggregate"
)

// AggregatesConfig is the `aggregates:` section: hourly and daily
// aggregates of votes and activations for long ranges (see
// backend/aggregate).
type AggregatesConfig struct {
	Disabled bool          `yaml:"disabled"`
	Every    time.Duration `yaml:"every"`  // default 10m
	Settle   time.Duration `yaml:"settle"` // hours aggregated again on every run; default 2h
	Refold   time.Duration `yaml:"refold"` // how often the whole ingest.max_age window is aggregated again; default 6h
	// StateFile keeps the high-water mark; default <data_dir>/aggregate.json.
	StateFile string `yaml:"state_file"`
}

// newAggregates adds the aggregation job to the supervisor (nothing when
// disabled); a job that cannot start is logged and the backend runs on.
func (a *App) newAggregates() error {
	c := a.cfg.Aggregates
	if c.Disabled {
		return nil
	}
	state := c.StateFile
	if state == "" {
		state = filepath.Join(a.cfg.DataDir, "aggregate.json")
	}
	job, err := aggregate.New(aggregate.Options{
		URL: a.cfg.Influx.URL, Token: a.cfg.Influx.Token, Org: a.cfg.Influx.Org, Bucket: a.cfg.Influx.Bucket,
		StateFile: state, Every: c.Every, Settle: c.Settle, Refold: c.Refold, MaxAge: a.cfg.Ingest.MaxAge,
		Cluster: a.clusterJobs(), Logger: a.log.With("part", "aggregate"), Registerer: a.metrics,
	})
	if err != nil {
		return err
	}
	a.reports.aggregate = job
	a.sup.add("aggregate", optional(a.log, "aggregate job", job))
	return nil
}
