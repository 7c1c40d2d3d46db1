package seriesalert

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/intake/influx"
)

// raiseRecorder records what a Raiser is asked.
type raiseRecorder struct{ calls []string }

func (r *raiseRecorder) Raise(_ context.Context, f alert.Finding) error {
	r.calls = append(r.calls, "raise "+string(f.Kind)+" "+string(f.Severity))
	return nil
}

func (r *raiseRecorder) Resolve(_ context.Context, k alert.Kind, _ alert.Subject, _ string) error {
	r.calls = append(r.calls, "resolve "+string(k))
	return nil
}

// TestSeriesReporter: a limit refusal is critical, 80% of the limit warns
// (95% is critical), and each resolves once when its condition clears;
// nothing is resolved that was never raised (without the alert manager
// every Resolve would write a point).
func TestSeriesReporter(t *testing.T) {
	rec := &raiseRecorder{}
	report := Reporter(rec, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	steps := []struct {
		st   influx.SeriesState
		want []string
	}{
		{influx.SeriesState{Series: 10, Limit: 100}, nil},
		{influx.SeriesState{Series: 80, Limit: 100, Warn: true, PerDay: 10, Left: 2 * 24 * time.Hour}, []string{"raise influx_series warning"}},
		{influx.SeriesState{Series: 96, Limit: 100, Warn: true}, []string{"raise influx_series critical"}},
		{influx.SeriesState{Series: 100, Limit: 100, Warn: true, Refused: errors.New("max-series-per-database limit exceeded")},
			[]string{"raise influx_limit critical", "raise influx_series critical"}},
		{influx.SeriesState{Series: 100, Limit: 1000}, []string{"resolve influx_limit", "resolve influx_series"}},
		{influx.SeriesState{Series: 100, Limit: 1000}, nil},
		// An unreadable count neither raises nor clears the warning.
		{influx.SeriesState{Series: -1, Limit: 1000}, nil},
	}
	for i, s := range steps {
		rec.calls = nil
		report(ctx, s.st)
		if len(rec.calls) != len(s.want) {
			t.Fatalf("step %d: %q, want %q", i, rec.calls, s.want)
		}
		for j := range s.want {
			if rec.calls[j] != s.want[j] {
				t.Fatalf("step %d: %q, want %q", i, rec.calls, s.want)
			}
		}
	}
}
