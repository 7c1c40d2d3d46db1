// Package seriesalert turns the series check of InfluxDB
// (intake/influx.SeriesCheck) into alerts about the installation: a limit
// refusing points, a series count near its limit.
package seriesalert

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/intake/influx"
)

// Alert kinds of InfluxDB's capacity, about the whole installation (their
// subject is empty).
const (
	// KindInfluxLimit: InfluxDB refuses points for a limit (series,
	// values per tag, a 2.x/3.x quota). Nothing is lost: the points wait
	// in the spool, and /readyz is 503, until the limit is raised.
	KindInfluxLimit alert.Kind = "influx_limit"
	// KindInfluxSeries: the series count passed 80% of influx.max_series.
	KindInfluxSeries alert.Kind = "influx_series"
)

const influxLimitHint = "Raise max-series-per-database (or max-values-per-tag) in influxd.conf and restart influxd " +
	"(on 2.x/3.x: the plan's cardinality limit); the backend writes the waiting points by itself. " +
	"See deploy/influxdb/README.md, \"Series\"."

// Reporter turns series checks into alerts: a limit refusing points
// is critical; a count at 80% of the limit warns (critical from 95%) with
// the time left at the growth seen. Each clears itself when its condition
// does. The check never runs twice at once, so its state needs no lock.
func Reporter(r alert.Raiser, log *slog.Logger) func(context.Context, influx.SeriesState) {
	open := map[alert.Kind]bool{}
	// resolve closes only what this check raised: without the alert
	// manager every Resolve would write a point.
	resolve := func(ctx context.Context, kind alert.Kind, reason string) error {
		if !open[kind] {
			return nil
		}
		open[kind] = false
		return r.Resolve(ctx, kind, alert.Subject{}, reason)
	}
	raise := func(ctx context.Context, f alert.Finding) error {
		open[f.Kind] = true
		return r.Raise(ctx, f)
	}
	return func(ctx context.Context, st influx.SeriesState) { report(ctx, log, raise, resolve, st) }
}

func report(ctx context.Context, log *slog.Logger, raise func(context.Context, alert.Finding) error,
	resolve func(context.Context, alert.Kind, string) error, st influx.SeriesState) {
	details := map[string]string{"series": fmt.Sprint(st.Series), "limit": fmt.Sprint(st.Limit),
		"per_day": fmt.Sprintf("%.0f", st.PerDay), "left": st.Left.String()}
	var err error
	if st.Refused != nil {
		log.Error("InfluxDB refuses points for a limit; they wait in the spool", "state", st.Describe())
		err = raise(ctx, alert.Finding{Kind: KindInfluxLimit, Severity: alert.SeverityCritical,
			Message: st.Describe(), Hint: influxLimitHint, Time: st.Time, Details: details})
	} else {
		err = resolve(ctx, KindInfluxLimit, "InfluxDB takes points again")
	}
	if err != nil {
		log.Warn("series alert", "kind", KindInfluxLimit, "err", err)
	}
	switch {
	case st.Warn:
		sev := alert.SeverityWarning
		if st.Share() >= 0.95 {
			sev = alert.SeverityCritical
		}
		log.Warn("InfluxDB series count near its limit", "state", st.Describe())
		err = raise(ctx, alert.Finding{Kind: KindInfluxSeries, Severity: sev,
			Message: st.Describe(), Hint: influxLimitHint, Time: st.Time, Details: details})
	case st.Series >= 0:
		err = resolve(ctx, KindInfluxSeries, st.Describe())
	}
	if err != nil {
		log.Warn("series alert", "kind", KindInfluxSeries, "err", err)
	}
}
