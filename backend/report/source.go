package report

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Where a report reads its votes and activations: the raw points, or the
// hourly and daily aggregates of backend/aggregate (measurement and field
// names below are that package's; this package does not import it so that
// it can run against any InfluxDB that holds them).
//
// A span is cut into pieces: whole UTC days from the daily aggregates,
// whole hours at the edges from the hourly ones, and a running hour (a
// report of today so far) from the raw points. Counts and sums add up
// across pieces, so the figures are the same either way.

type grain int

const (
	raw grain = iota
	hourly
	daily
	// reportDaily is whole UTC days from the report tier: one point per
	// site and day holding its operators, hours and scores (aggregate's
	// ReportDaily and ReportDay). Cells, scores and the timeline read the
	// same days from it, once (see dayCache).
	reportDaily
)

// The report tier's measurement and field (aggregate.ReportDaily,
// aggregate.ReportField).
const (
	reportMeasurement = `"report_site_1d"`
	reportField       = "sums"
)

// tier is which aggregates a reader can use: the finest keep every tag,
// the coarser ones drop counter, service and channel (operator), then
// the operator (site), then the site (org). The coarsest that still holds
// the tags a read filters and groups by is read: for an organisation's
// year it is the difference between hundreds of thousands of series
// points and tens of thousands.
type tier int

const (
	fine tier = iota
	byOperator
	bySite
	byOrg
)

// infix is the tier's part of the measurement names (backend/aggregate's
// Tier.Name).
func (t tier) infix() string { return [...]string{"", "_op", "_site", "_org"}[t] }

// hasHourly says whether the tier has hourly points (aggregate's
// Tier.Hourly): the finest and per-operator tiers are daily only, and
// their hours are read from raw points.
func (t tier) hasHourly() bool { return t == bySite || t == byOrg }

// tierFor is the coarsest tier that answers r's filter and a grouping by
// operator (when byOp) or by nothing.
func (r Request) tierFor(groupByOp bool) tier {
	switch {
	case r.Service != "":
		return fine
	case groupByOp || r.Operator != "":
		return byOperator
	case r.Site != "":
		return bySite
	}
	return byOrg
}

// piece is a part of a span read at one grain.
type piece struct {
	g        grain
	t        tier
	from, to time.Time
}

func (p piece) span() string { return span(p.from, p.to) }

func (p piece) vote() string {
	if p.g == raw {
		return `"vote"`
	}
	return `"vote` + p.t.infix() + [...]string{"", "_1h", "_1d"}[p.g] + `"`
}

func (p piece) activation() string {
	if p.g == raw {
		return `"activation"`
	}
	return `"activation` + p.t.infix() + [...]string{"", "_1h", "_1d"}[p.g] + `"`
}

// voteWhere selects keypad ratings.
func (p piece) voteWhere() string {
	if p.g == raw {
		return validVote // aggregates hold valid votes only
	}
	return `"scale" != 'nps11'`
}

// voteSums are count, score sum, satisfied, negative and service time
// as n, sum, sat, neg, svc.
func (p piece) voteSums() string {
	if p.g == raw {
		return `count("score") AS "n", sum("score") AS "sum", sum("satisfied") AS "sat", sum("negative") AS "neg", sum("service_s") AS "svc"`
	}
	return `sum("votes") AS "n", sum("score_sum") AS "sum", sum("satisfied") AS "sat", sum("negative") AS "neg", sum("service_s_sum") AS "svc"`
}

// actSums are closed activations and answered ones as n, voted.
func (p piece) actSums() string {
	if p.g == raw {
		return `count("voted") AS "n", sum("voted") AS "voted"`
	}
	return `sum("activations") AS "n", sum("voted") AS "voted"`
}

// scoreStmts count votes per score 1..5 as s1..s5.
func (p piece) scoreStmts(where string) []string {
	if p.g != raw {
		return []string{fmt.Sprintf(`SELECT sum("score_1") AS "s1", sum("score_2") AS "s2", sum("score_3") AS "s3",`+
			` sum("score_4") AS "s4", sum("score_5") AS "s5" FROM %s WHERE %s%s AND %s`, p.vote(), p.voteWhere(), where, p.span())}
	}
	var out []string
	for s := 1; s <= 5; s++ {
		out = append(out, fmt.Sprintf(`SELECT count("score") AS "s%d" FROM "vote" WHERE %s%s AND "score" = %d AND %s`,
			s, validVote, where, s, p.span()))
	}
	return out
}

// pieces cuts [from, to) for a reader that needs no finer grain than
// finest (hourly for the hour-of-week map, daily for totals) and no
// finer tier than tr.
func (b *Builder) pieces(from, to time.Time, finest grain, tr tier) []piece {
	if !b.Aggregates || !to.After(from) || to.Sub(from) < b.rawUpTo() ||
		(b.AggregatedUntil != nil && b.AggregatedUntil().Before(to)) {
		return []piece{{raw, fine, from, to}}
	}
	var out []piece
	add := func(g grain, f, t time.Time) {
		if g == hourly && !tr.hasHourly() {
			g = raw
		}
		if !t.After(f) {
			return
		}
		if g == raw {
			// Raw points hold every tag; and a raw piece next to another
			// is one read.
			if n := len(out); n > 0 && out[n-1].g == raw && out[n-1].to.Equal(f) {
				out[n-1].to = t
				return
			}
			out = append(out, piece{raw, fine, f, t})
			return
		}
		out = append(out, piece{g, tr, f, t})
	}
	// The running hour from raw points: its hourly aggregate may lag.
	hourEnd := to.Truncate(time.Hour)
	hourStart := from.Truncate(time.Hour)
	if hourStart.Before(from) {
		hourStart = hourStart.Add(time.Hour)
		add(raw, from, hourStart) // a zone with a half-hour offset
	}
	if !hourEnd.After(hourStart) {
		return []piece{{raw, fine, from, to}}
	}
	if finest == hourly {
		add(hourly, hourStart, hourEnd)
	} else {
		dayStart := hourStart.Truncate(24 * time.Hour)
		if dayStart.Before(hourStart) {
			dayStart = dayStart.Add(24 * time.Hour)
		}
		dayEnd := hourEnd.Truncate(24 * time.Hour)
		if dayEnd.After(dayStart) {
			add(hourly, hourStart, dayStart)
			add(daily, dayStart, dayEnd)
			add(hourly, dayEnd, hourEnd)
		} else {
			add(hourly, hourStart, hourEnd)
		}
	}
	add(raw, hourEnd, to)
	return out
}

// rawUpTo is the longest period read from raw points.
func (b *Builder) rawUpTo() time.Duration {
	if b.RawUpTo > 0 {
		return b.RawUpTo
	}
	return DefaultRawUpTo
}

// DefaultRawUpTo: periods shorter than this are read from raw points
// even when aggregates exist (a day of a large fleet is quick either way,
// and raw points are never behind).
const DefaultRawUpTo = 2 * 24 * time.Hour

// withReportTier reads ps' whole days from the report tier when r's scope
// is one it holds: every organisation, an organisation or a site (it has
// no services, and an operator's report reads the per-operator tier).
func withReportTier(r Request, ps []piece) []piece {
	if r.Operator != "" || r.Service != "" {
		return ps
	}
	for i := range ps {
		if ps[i].g == daily {
			ps[i].g = reportDaily
		}
	}
	return ps
}

// settleEdges answers the raw pieces of a report-tier request from the
// report tier where its days show that it can, exactly. A report in a
// zone east of UTC starts and ends inside UTC days: Europe/Sofia's week
// starts at 22:00 UTC, so its first two hours and its last day's first 22
// are raw pieces, and raw points read per operator are the costliest
// read of a large organisation (every series of the scope is opened,
// about a second a read for 2,000 keypads, however few hours). Each raw
// piece is cut at UTC midnights; a part inside a UTC day that is over
// and aggregated is dropped when that day's hours in it are empty at
// every site (the night before a local morning), or read from the whole
// day's report tier when the day's hours outside it are (the evening
// after a local close). Anything else stays raw.
func (b *Builder) settleEdges(ctx context.Context, dc dayCache, r Request, now time.Time, ps []piece, where string) ([]piece, error) {
	if !b.Aggregates || r.Operator != "" || r.Service != "" {
		return ps, nil
	}
	var out []piece
	for _, p := range ps {
		if p.g != raw {
			out = append(out, p)
			continue
		}
		for from := p.from; from.Before(p.to); {
			day := from.Truncate(24 * time.Hour)
			to := day.Add(24 * time.Hour)
			if to.After(p.to) {
				to = p.to
			}
			part, keep := piece{raw, fine, from, to}, true
			if b.daySettled(day, now) {
				whole := piece{reportDaily, p.t, day, day.Add(24 * time.Hour)}
				f, err := b.reportDays(ctx, dc, whole, where)
				if err != nil {
					return nil, err
				}
				switch inside, outside := f.busy(from, to); {
				case !inside:
					keep = false // nothing to read
				case !outside:
					part = whole
				}
			}
			if keep {
				out = append(out, part)
			}
			from = to
		}
	}
	return out, nil
}

// daySettled says whether the UTC day starting at day is over and in the
// aggregates for good: an hour past its end (the aggregate job folds the
// running hour too, partly) and, when the high-water mark is known, that
// hour aggregated.
func (b *Builder) daySettled(day, now time.Time) bool {
	settled := day.Add(25 * time.Hour)
	if now.Before(settled) {
		return false
	}
	return b.AggregatedUntil == nil || !b.AggregatedUntil().Before(settled)
}

// busy says whether the folded hours have votes or closed activations
// within [from, to) (inside) or outside it; an hour that straddles a
// bound counts as both.
func (f *dayFold) busy(from, to time.Time) (inside, outside bool) {
	lo, hi := from.UnixNano(), to.UnixNano()
	for at, v := range f.hours {
		if v[0] == 0 && v[4] == 0 {
			continue
		}
		end := at + int64(time.Hour)
		if at < hi && end > lo {
			inside = true
		}
		if at < lo || end > hi {
			outside = true
		}
	}
	return inside, outside
}

// reportDay is one point of the report tier, decoded.
type reportDay struct {
	// As aggregate.ReportDay.
	Ops    map[string]*[7]int64 `json:"ops"`
	Hours  map[int]*[6]int64    `json:"hours"`
	Scores [5]int64             `json:"scores"`
}

// dayFold is what a report takes from the report tier's days, summed as
// they are read: per organisation, site and operator, per score, and per
// UTC hour (every site's hour added up). A year of a 200-site
// organisation is 73,000 days of a kilobyte or two each; folded, it is
// its operators and 8,760 hours.
type dayFold struct {
	cells  map[[3]string]*Figures // org, site, operator
	scores [5]int64
	hours  map[int64]*[6]int64 // by the hour's start, Unix nanoseconds
}

func newDayFold() *dayFold {
	return &dayFold{cells: map[[3]string]*Figures{}, hours: map[int64]*[6]int64{}}
}

// merge adds o's sums to f's.
func (f *dayFold) merge(o *dayFold) {
	for k, c := range o.cells {
		if f.cells[k] == nil {
			f.cells[k] = &Figures{}
		}
		f.cells[k].add(*c)
	}
	for i, n := range o.scores {
		f.scores[i] += n
	}
	for at, v := range o.hours {
		f.addHour(at, v)
	}
}

func (f *dayFold) addHour(at int64, v *[6]int64) {
	sum := f.hours[at]
	if sum == nil {
		sum = &[6]int64{}
		f.hours[at] = sum
	}
	for i := range v {
		sum[i] += v[i]
	}
}

func (f *dayFold) add(org, site string, day time.Time, d *reportDay) {
	for op, v := range d.Ops {
		if *v == [7]int64{} {
			continue // activations opened only: raw points give no row either
		}
		k := [3]string{org, site, op}
		c := f.cells[k]
		if c == nil {
			c = &Figures{}
			f.cells[k] = c
		}
		c.add(Figures{Votes: v[0], ScoreSum: v[1], Satisfied: v[2], Negative: v[3], ServiceSum: v[4], Activations: v[5], Voted: v[6]})
	}
	for i, n := range d.Scores {
		f.scores[i] += n
	}
	for h, v := range d.Hours {
		f.addHour(day.Add(time.Duration(h)*time.Hour).UnixNano(), v)
	}
}

// dayCache holds the report tier's days folded by one Build, by piece and
// filter: cells, scores and the timeline ask for the same ones.
type dayCache map[string]*dayFold

// reportChunk is the longest span one read of the report tier covers. A
// week is a 200-site organisation's 1,400 days, some 2 MB of JSON; a year
// in one read is over 100 MB, past the client's response limit, and all
// of it held at once.
const reportChunk = 7 * 24 * time.Hour

// reportReaders is how many chunks of the report tier are read at once:
// InfluxDB reads and encodes one while this side decodes another (a
// year of a 200-site organisation: 52 reads of some 130 ms each).
const reportReaders = 4

// reportDays reads and folds the report tier's days of p (a reportDaily
// piece), a chunk at a time, reportReaders at once. Chunks end on the
// weeks InfluxDB's default shard groups are cut at (Go's Truncate, as
// InfluxDB's), so each read opens one shard.
func (b *Builder) reportDays(ctx context.Context, dc dayCache, p piece, where string) (*dayFold, error) {
	key := p.span() + where
	if f, ok := dc[key]; ok {
		return f, nil
	}
	f := newDayFold()
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(reportReaders)
	for from := p.from; from.Before(p.to); {
		to := from.Truncate(reportChunk).Add(reportChunk)
		if to.After(p.to) {
			to = p.to
		}
		cond := span(from, to) + where
		g.Go(func() error {
			part := newDayFold()
			if err := b.foldReportDays(gctx, part, cond); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			f.merge(part)
			return nil
		})
		from = to
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	dc[key] = f
	return f, nil
}

// foldReportDays reads the report tier's days matching cond into f.
func (b *Builder) foldReportDays(ctx context.Context, f *dayFold, cond string) error {
	res, err := b.DB.Query(ctx, `SELECT "`+reportField+`" FROM `+reportMeasurement+` WHERE `+cond+` GROUP BY "org", "site"`)
	if err != nil {
		return fmt.Errorf("read report days: %w", err)
	}
	for _, s := range res {
		org, site := s.Tags["org"], s.Tags["site"]
		for row := range s.Values {
			at, err := s.Time(row)
			if err != nil {
				return fmt.Errorf("read report days: %w", err)
			}
			text, err := s.Text(row, reportField)
			if err != nil {
				return fmt.Errorf("read report days: %w", err)
			}
			var d reportDay
			if err := json.Unmarshal([]byte(text), &d); err != nil {
				return fmt.Errorf("read report day %s %s/%s: %w", at.UTC().Format(time.DateOnly), org, site, err)
			}
			f.add(org, site, at.UTC(), &d)
		}
	}
	return nil
}
