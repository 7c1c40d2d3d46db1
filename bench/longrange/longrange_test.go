package longrange

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/semko/semko/internal/influxlocal"
)

// A run with Reuse times the same data again: same hour, same points,
// the same rows answered, without loading or aggregating.
func TestReuseMeasuresTheSameData(t *testing.T) {
	if testing.Short() {
		t.Skip("loads and aggregates a small fleet")
	}
	if _, err := influxlocal.Ensure(t.Context(), slog.New(slog.NewTextHandler(t.Output(), nil))); err != nil {
		t.Fatalf("influxlocal: %v", err)
	}
	cfg := Config{Dir: t.TempDir(), Keypads: 3, Days: 8, Repeats: 1, Fleets: 1, Dashboard: "../../grafana/dashboards/satisfaction.json"}
	first, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Reuse = true
	again, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if first.Points["1x"] == 0 || again.Points["1x"] != first.Points["1x"] {
		t.Fatalf("points: first %d, reused %d", first.Points["1x"], again.Points["1x"])
	}
	if len(first.Rows) == 0 || len(again.Rows) != len(first.Rows) {
		t.Fatalf("rows: first %d, reused %d", len(first.Rows), len(again.Rows))
	}
	for i, r := range first.Rows {
		a := again.Rows[i]
		if r.Query != a.Query || r.RawN != a.RawN || r.AggN != a.AggN || r.SiteN != a.SiteN || r.AggN == 0 || r.RawCut {
			t.Errorf("%s, %d days: rows raw/agg/site %d/%d/%d, reused %d/%d/%d", r.Query, r.Days, r.RawN, r.AggN, r.SiteN, a.RawN, a.AggN, a.SiteN)
		}
	}
	// Raw queries cut at their limit are killed in InfluxDB before the
	// next is timed.
	cfg.RawTimeout = time.Millisecond
	cut, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cuts := 0
	for i, r := range cut.Rows {
		if r.RawCut {
			cuts++
		}
		if r.AggN != first.Rows[i].AggN {
			t.Errorf("%s, %d days, after raw runs cut at 1 ms: %d rows from the aggregates, want %d", r.Query, r.Days, r.AggN, first.Rows[i].AggN)
		}
	}
	if cuts == 0 {
		t.Error("no raw run was cut at 1 ms: the kill path was not exercised")
	}
	if _, err := Run(context.Background(), Config{Dir: t.TempDir(), Reuse: true, Fleets: 1, Dashboard: cfg.Dashboard}); err == nil {
		t.Error("reuse of an empty directory: no error")
	}
}
