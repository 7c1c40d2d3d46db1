package rollup

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Levels of the rollup measurement, from the whole population down.
const (
	LevelAll      = "all"
	LevelOrg      = "org"
	LevelSite     = "site"
	LevelCounter  = "counter"
	LevelOperator = "operator"
	// LevelHourOfWeek holds satisfaction by weekday and hour of day, per
	// organisation and (without org tag) over all of them.
	LevelHourOfWeek = "hour_of_week"
)

// levels lists every level in the order points are written.
var levels = []string{LevelAll, LevelOrg, LevelSite, LevelCounter, LevelOperator}

// entity identifies one thing a level ranks; fields a level does not use
// stay empty.
type entity struct {
	org, site, counter, operator string
}

// at projects a raw (org, site, counter, operator) cell onto a level.
func (e entity) at(level string) entity {
	switch level {
	case LevelOrg:
		return entity{org: e.org}
	case LevelSite:
		return entity{org: e.org, site: e.site}
	case LevelCounter:
		return entity{org: e.org, site: e.site, counter: e.counter}
	case LevelOperator:
		return entity{org: e.org, operator: e.operator}
	}
	return entity{}
}

// tally counts what one entity (or one raw cell) had in the window.
type tally struct {
	votes, satisfied                int64 // keypad (csat5) ratings
	activations, voted              int64
	npsVotes, promoters, detractors int64
}

func (t *tally) add(o tally) {
	t.votes += o.votes
	t.satisfied += o.satisfied
	t.activations += o.activations
	t.voted += o.voted
	t.npsVotes += o.npsVotes
	t.promoters += o.promoters
	t.detractors += o.detractors
}

// figure is one rollup point to be.
type figure struct {
	level string
	entity
	tally
	satisfiedShare, shrunkShare float64 // defined when votes > 0
	rank, ranked                int     // defined when votes > 0 and level != all
}

// compute aggregates raw cells into every level, shrinks each satisfied
// share toward the overall one with weight m and ranks each level. Entities
// without ratings keep their activation and NPS figures but are not ranked.
// The result is sorted by level, then rank, then name, so runs are stable.
func compute(cells map[entity]tally, m float64) []figure {
	var out []figure
	var prior float64
	for _, level := range levels {
		byEntity := map[entity]*tally{}
		for e, t := range cells {
			if level == LevelOperator && e.operator == "" {
				continue // votes without an operator do not make an operator
			}
			k := e.at(level)
			if byEntity[k] == nil {
				byEntity[k] = &tally{}
			}
			byEntity[k].add(t)
		}
		start := len(out)
		for e, t := range byEntity {
			f := figure{level: level, entity: e, tally: *t}
			if t.votes > 0 {
				f.satisfiedShare = float64(t.satisfied) / float64(t.votes)
			}
			out = append(out, f)
		}
		if level == LevelAll {
			if len(out) == 1 && out[0].votes > 0 {
				prior = out[0].satisfiedShare
				out[0].shrunkShare = prior
			}
			continue
		}
		rankLevel(out[start:], prior, m)
	}
	return out
}

// rankLevel fills shrunk shares and ranks of one level's figures and sorts
// them best first; unrated entities go last, by name.
func rankLevel(fs []figure, prior, m float64) {
	for i := range fs {
		if fs[i].votes > 0 {
			fs[i].shrunkShare = (float64(fs[i].satisfied) + m*prior) / (float64(fs[i].votes) + m)
		}
	}
	slices.SortFunc(fs, func(a, b figure) int {
		if (a.votes > 0) != (b.votes > 0) {
			if a.votes > 0 {
				return -1
			}
			return 1
		}
		return cmp.Or(
			cmp.Compare(b.shrunkShare, a.shrunkShare),
			cmp.Compare(b.votes, a.votes), // equal shares: more evidence first
			cmp.Compare(a.org, b.org), cmp.Compare(a.site, b.site),
			cmp.Compare(a.counter, b.counter), cmp.Compare(a.operator, b.operator),
		)
	})
	ranked := 0
	for _, f := range fs {
		if f.votes > 0 {
			ranked++
		}
	}
	for i := range fs {
		if fs[i].votes > 0 {
			fs[i].rank, fs[i].ranked = i+1, ranked
		}
	}
}

// fields returns the point's fields: only those that are defined.
func (f figure) fields() map[string]any {
	out := map[string]any{"votes": f.votes, "activations": f.activations}
	if f.votes > 0 {
		out["satisfied"] = f.satisfied
		out["satisfied_share"] = f.satisfiedShare
		out["shrunk_share"] = f.shrunkShare
		if f.level != LevelAll {
			out["rank"] = int64(f.rank)
			out["ranked"] = int64(f.ranked)
		}
	}
	if f.activations > 0 {
		out["participation"] = float64(f.voted) / float64(f.activations)
	}
	if f.npsVotes > 0 {
		out["nps_votes"] = f.npsVotes
		out["nps"] = 100 * float64(f.promoters-f.detractors) / float64(f.npsVotes)
	}
	return out
}

// tags returns the point's tags; empty ones are left out, as line protocol
// cannot carry them.
func (f figure) tags(window string) map[string]string {
	out := map[string]string{"level": f.level, "window": window}
	for k, v := range map[string]string{"org": f.org, "site": f.site, "counter": f.counter, "operator": f.operator} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// hourFigure is one hour-of-week cell: org empty means all organisations.
type hourFigure struct {
	org              string
	weekday, hour    int // ISO weekday 1 (Monday) .. 7, hour 0..23
	votes, satisfied int64
}

func (h hourFigure) tags(window string) map[string]string {
	out := map[string]string{
		"level": LevelHourOfWeek, "window": window,
		// Zero-padded and prefixed so that Grafana sorts them as text.
		"weekday": fmt.Sprintf("%d-%s", h.weekday, time.Weekday(h.weekday % 7).String()[:3]),
		"hour":    fmt.Sprintf("%02d", h.hour),
	}
	if h.org != "" {
		out["org"] = h.org
	}
	return out
}

func (h hourFigure) fields() map[string]any {
	return map[string]any{
		"votes": h.votes, "satisfied": h.satisfied,
		"satisfied_share": float64(h.satisfied) / float64(h.votes),
	}
}
