package rollup

import (
	"math"
	"testing"
	"time"
)

func TestComputeShrinksAndRanks(t *testing.T) {
	// Overall: 3+1+40 = 44 satisfied of 3+2+60 = 65 votes.
	cells := map[entity]tally{
		{org: "a", site: "s1", counter: "c1", operator: "o1"}: {votes: 3, satisfied: 3},
		{org: "a", site: "s1", counter: "c2", operator: "o2"}: {votes: 2, satisfied: 1, activations: 4, voted: 2},
		{org: "b", site: "s2", counter: "c3", operator: "o3"}: {votes: 60, satisfied: 40, activations: 80, voted: 60},
		{org: "b", site: "s2", counter: "c4"}:                 {activations: 5, npsVotes: 4, promoters: 3, detractors: 1},
	}
	const m = 20
	prior := 44.0 / 65
	shrunk := func(sat, n float64) float64 { return (sat + m*prior) / (n + m) }

	tests := []struct {
		name          string
		level         string
		e             entity
		votes         int64
		shrunk        float64
		rank, ranked  int
		participation float64 // -1: undefined
		nps           float64 // NaN: undefined
	}{
		{"all", LevelAll, entity{}, 65, prior, 0, 0, 62.0 / 89, 50},
		{"small perfect sample is pulled down", LevelCounter, entity{org: "a", site: "s1", counter: "c1"}, 3, shrunk(3, 3), 1, 3, -1, math.NaN()},
		{"large sample", LevelCounter, entity{org: "b", site: "s2", counter: "c3"}, 60, shrunk(40, 60), 2, 3, 0.75, math.NaN()},
		{"worst", LevelCounter, entity{org: "a", site: "s1", counter: "c2"}, 2, shrunk(1, 2), 3, 3, 0.5, math.NaN()},
		{"unrated counter", LevelCounter, entity{org: "b", site: "s2", counter: "c4"}, 0, 0, 0, 0, 0, 50},
		{"site a/s1", LevelSite, entity{org: "a", site: "s1"}, 5, shrunk(4, 5), 1, 2, 0.5, math.NaN()},
		{"org b", LevelOrg, entity{org: "b"}, 60, shrunk(40, 60), 2, 2, 60.0 / 85, 50},
		{"operator", LevelOperator, entity{org: "a", operator: "o1"}, 3, shrunk(3, 3), 1, 3, -1, math.NaN()},
	}
	figs := compute(cells, m)
	for _, f := range figs {
		if f.level == LevelOperator && f.operator == "" {
			t.Errorf("operator level has an entity without operator: %+v", f)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *figure
			for i := range figs {
				if figs[i].level == tt.level && figs[i].entity == tt.e {
					got = &figs[i]
				}
			}
			if got == nil {
				t.Fatalf("no figure for %s %+v", tt.level, tt.e)
			}
			fields := got.fields()
			if got.votes != tt.votes || !near(got.shrunkShare, tt.shrunk) || got.rank != tt.rank || got.ranked != tt.ranked {
				t.Errorf("votes %d shrunk %.6f rank %d/%d, want %d %.6f %d/%d",
					got.votes, got.shrunkShare, got.rank, got.ranked, tt.votes, tt.shrunk, tt.rank, tt.ranked)
			}
			p, ok := fields["participation"].(float64)
			if tt.participation < 0 {
				if ok {
					t.Errorf("participation %v, want none", p)
				}
			} else if !ok || !near(p, tt.participation) {
				t.Errorf("participation %v (%v), want %v", p, ok, tt.participation)
			}
			n, ok := fields["nps"].(float64)
			if math.IsNaN(tt.nps) {
				if ok {
					t.Errorf("nps %v, want none", n)
				}
			} else if !ok || !near(n, tt.nps) {
				t.Errorf("nps %v (%v), want %v", n, ok, tt.nps)
			}
			if _, ok := fields["rank"]; ok != (tt.votes > 0 && tt.level != LevelAll) {
				t.Errorf("rank field present = %v", ok)
			}
		})
	}
}

func TestComputeEmpty(t *testing.T) {
	if figs := compute(nil, 20); len(figs) != 0 {
		t.Fatalf("compute(nil) = %v, want nothing", figs)
	}
}

func TestWindowTag(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{30 * 24 * time.Hour, "30d"}, {12 * time.Hour, "12h"}, {90 * time.Minute, "1h30m0s"},
	} {
		if got := WindowTag(tt.d); got != tt.want {
			t.Errorf("WindowTag(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
