package report

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/internal/influxdb"
)

// Querier runs InfluxQL; *influxdb.Client is one. Build calls it from
// several goroutines at once (the report tier's chunks).
type Querier interface {
	Query(ctx context.Context, stmt string) ([]influxdb.Series, error)
}

// Alerts lists stored alerts; alert.Store implementations are.
type Alerts interface {
	Alerts(ctx context.Context, f alert.Filter) ([]alert.Alert, error)
}

// Builder computes reports.
type Builder struct {
	DB Querier
	// Alerts, when set, gives the notices and device findings; without it
	// the report leaves them out.
	Alerts Alerts
	// Now stamps reports; default time.Now.
	Now func() time.Time
	// Aggregates: read periods of RawUpTo and longer from the hourly and
	// daily aggregates (backend/aggregate) instead of raw points.
	Aggregates bool
	// RawUpTo, default DefaultRawUpTo.
	RawUpTo time.Duration
	// AggregatedUntil, when set, is the aggregates' high-water mark: a
	// period ending after it is read from raw points (a fresh install
	// whose first backfill has not finished).
	AggregatedUntil func() time.Time
}

// Build computes the report of r. Errors of r are ErrPeriod, ErrLang,
// ErrScope or ErrNotFound; anything else is trouble reading.
func (b *Builder) Build(ctx context.Context, r Request) (*Report, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	now := time.Now()
	if b.Now != nil {
		now = b.Now()
	}
	rep := &Report{Request: r, Generated: now, Now: r.Period.End}
	if now.Before(rep.Now) {
		rep.Now = now
	}
	if !rep.Now.After(r.Period.Start) {
		rep.Now = r.Period.Start // a period in the future: nothing to count
	}
	loc := r.Period.Start.Location()
	where := r.filter()

	dc := dayCache{}
	// The period's pieces for a grouping by operator or for totals.
	pieces := func(finest grain, tr tier) ([]piece, error) {
		return b.settleEdges(ctx, dc, r, now, withReportTier(r, b.pieces(r.Period.Start, rep.Now, finest, tr)), where)
	}

	// Sites and operators, from one grouping each way.
	ps, err := pieces(daily, r.tierFor(true))
	if err != nil {
		return nil, err
	}
	cells, err := b.cells(ctx, dc, ps, where)
	if err != nil {
		return nil, err
	}
	sites, ops := map[[2]string]*Row{}, map[[2]string]*Row{}
	for _, c := range cells {
		rep.Totals.add(c.Figures)
		for _, m := range []struct {
			rows map[[2]string]*Row
			name string
		}{{sites, c.site}, {ops, c.operator}} {
			if m.name == "" {
				continue
			}
			k := [2]string{c.org, m.name}
			if m.rows[k] == nil {
				m.rows[k] = &Row{Org: c.org, Name: m.name}
			}
			m.rows[k].add(c.Figures)
		}
	}
	prior, _ := rep.Totals.Share()
	for _, m := range []struct {
		rows map[[2]string]*Row
		out  *[]Row
	}{{sites, &rep.Sites}, {ops, &rep.Ops}} {
		for _, row := range m.rows {
			*m.out = append(*m.out, *row)
		}
		rank(*m.out, prior)
	}

	// The previous period, for the trend: totals only, so the coarsest
	// tier of the scope, not the report tier's operators.
	prev := r.Period.Previous()
	pcells, err := b.cells(ctx, dc, b.pieces(prev.Start, prev.End, daily, r.tierFor(false)), where)
	if err != nil {
		return nil, err
	}
	for _, c := range pcells {
		rep.Prev.add(c.Figures)
	}

	days, err := pieces(daily, r.tierFor(false))
	if err != nil {
		return nil, err
	}
	if err := b.scores(ctx, dc, rep, days, where); err != nil {
		return nil, err
	}
	// The timeline needs hours: the report tier has them for its whole
	// days, the hourly tiers for the rest.
	hours := b.pieces(r.Period.Start, rep.Now, hourly, r.tierFor(false))
	if slices.ContainsFunc(days, func(p piece) bool { return p.g == reportDaily }) {
		hours = days
	}
	if err := b.timeline(ctx, dc, rep, hours, where, loc); err != nil {
		return nil, err
	}
	if err := b.health(ctx, rep, span(r.Period.Start, rep.Now)); err != nil {
		return nil, err
	}
	if err := b.notices(ctx, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// validVote selects keypad ratings; valid is a tag in old shards and a
// field in new ones.
const validVote = `("valid"::tag = 'true' OR "valid"::field = 'true') AND "scale" != 'nps11'`

func span(from, to time.Time) string {
	return fmt.Sprintf(`time >= '%s' AND time < '%s'`, from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano))
}

// quote makes s an InfluxQL string literal.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// filter is the tag condition of the request's scope (with a leading
// " AND ", or empty).
func (r Request) filter() string {
	var b strings.Builder
	for _, t := range [][2]string{{"org", r.Org}, {"site", r.Site}, {"operator", r.Operator}, {"service", r.Service}} {
		if t[1] != "" {
			fmt.Fprintf(&b, ` AND "%s" = %s`, t[0], quote(t[1]))
		}
	}
	return b.String()
}

type cell struct {
	org, site, operator string
	Figures
}

// cells reads votes and activations grouped by org, site and operator.
func (b *Builder) cells(ctx context.Context, dc dayCache, pieces []piece, where string) ([]cell, error) {
	const by = ` GROUP BY "org", "site", "operator"`
	idx := map[[3]string]int{}
	var out []cell
	at := func(org, site, operator string) *cell {
		k := [3]string{org, site, operator}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, cell{org: k[0], site: k[1], operator: k[2]})
		}
		return &out[i]
	}
	var votes, acts []influxdb.Series
	for _, p := range pieces {
		if p.g == reportDaily {
			f, err := b.reportDays(ctx, dc, p, where)
			if err != nil {
				return nil, err
			}
			// In key order, so that a report reads the same every time.
			for _, k := range slices.SortedFunc(maps.Keys(f.cells), func(a, b [3]string) int { return slices.Compare(a[:], b[:]) }) {
				at(k[0], k[1], k[2]).add(*f.cells[k])
			}
			continue
		}
		v, err := b.DB.Query(ctx, `SELECT `+p.voteSums()+` FROM `+p.vote()+` WHERE `+p.voteWhere()+where+` AND `+p.span()+by)
		if err != nil {
			return nil, fmt.Errorf("read votes: %w", err)
		}
		a, err := b.DB.Query(ctx, `SELECT `+p.actSums()+` FROM `+p.activation()+` WHERE `+p.span()+where+by)
		if err != nil {
			return nil, fmt.Errorf("read activations: %w", err)
		}
		votes, acts = append(votes, v...), append(acts, a...)
	}
	for _, s := range votes {
		c := at(s.Tags["org"], s.Tags["site"], s.Tags["operator"])
		c.Votes += num(s, "n")
		c.ScoreSum += num(s, "sum")
		c.Satisfied += num(s, "sat")
		c.Negative += num(s, "neg")
		c.ServiceSum += num(s, "svc")
	}
	for _, s := range acts {
		c := at(s.Tags["org"], s.Tags["site"], s.Tags["operator"])
		c.Activations += num(s, "n")
		c.Voted += num(s, "voted")
	}
	return out, nil
}

// num sums an integer column over a series' rows; nulls count as zero.
func num(s influxdb.Series, col string) int64 {
	var sum int64
	for row := range s.Values {
		if v, ok := s.Number(row, col); ok {
			sum += int64(v)
		}
	}
	return sum
}

// scores reads the distribution of scores 1..5.
func (b *Builder) scores(ctx context.Context, dc dayCache, rep *Report, pieces []piece, where string) error {
	for _, p := range pieces {
		if p.g == reportDaily {
			f, err := b.reportDays(ctx, dc, p, where)
			if err != nil {
				return err
			}
			for i, n := range f.scores {
				rep.Scores[i+1] += n
			}
			continue
		}
		for _, stmt := range p.scoreStmts(where) {
			res, err := b.DB.Query(ctx, stmt)
			if err != nil {
				return fmt.Errorf("read scores: %w", err)
			}
			for _, s := range res {
				for score := 1; score <= 5; score++ {
					rep.Scores[score] += num(s, fmt.Sprintf("s%d", score))
				}
			}
		}
	}
	return nil
}

// timeline reads hourly votes in the report's zone and folds them into
// days and the hour-of-week map. Activations go into days only. An hour
// of the aggregates counts in the local hour it starts in (the same as
// raw points in every zone a whole number of hours from UTC).
func (b *Builder) timeline(ctx context.Context, dc dayCache, rep *Report, pieces []piece, where string, loc *time.Location) error {
	tz := ""
	if name := loc.String(); name != "UTC" && name != "Local" && name != "" {
		tz = " tz(" + quote(name) + ")"
	}
	days := map[time.Time]*Day{}
	for _, d := range rep.Request.Period.Days() {
		if d.Before(rep.Now) {
			days[d] = &Day{Day: d}
			rep.Daily = append(rep.Daily, Day{Day: d})
		}
	}
	dayOf := func(ns float64) *Day {
		t := time.Unix(0, int64(ns)).In(loc)
		return days[time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)]
	}
	addVotes := func(ns float64, n, sum, sat, neg int64) {
		if d := dayOf(ns); d != nil {
			d.Votes += n
			d.ScoreSum += sum
			d.Satisfied += sat
			d.Negative += neg
		}
		t := time.Unix(0, int64(ns)).In(loc)
		c := &rep.HourMap[(int(t.Weekday())+6)%7][t.Hour()]
		c.Votes += n
		c.Satisfied += sat
	}
	addActs := func(ns float64, n, voted int64) {
		if d := dayOf(ns); d != nil {
			d.Activations += n
			d.Voted += voted
		}
	}
	var votes, acts []influxdb.Series
	for _, p := range pieces {
		if p.g == reportDaily {
			f, err := b.reportDays(ctx, dc, p, where)
			if err != nil {
				return err
			}
			for at, v := range f.hours {
				addVotes(float64(at), v[0], v[1], v[2], v[3])
				addActs(float64(at), v[4], v[5])
			}
			continue
		}
		v, err := b.DB.Query(ctx, `SELECT `+p.voteSums()+` FROM `+p.vote()+` WHERE `+p.voteWhere()+where+` AND `+p.span()+
			` GROUP BY time(1h) fill(none)`+tz)
		if err != nil {
			return fmt.Errorf("read hours: %w", err)
		}
		a, err := b.DB.Query(ctx, `SELECT `+p.actSums()+` FROM `+p.activation()+` WHERE `+p.span()+where+
			` GROUP BY time(1h) fill(none)`+tz)
		if err != nil {
			return fmt.Errorf("read activation hours: %w", err)
		}
		votes, acts = append(votes, v...), append(acts, a...)
	}
	for _, s := range votes {
		for row := range s.Values {
			ns, ok := s.Number(row, "time")
			if !ok {
				continue
			}
			n, _ := s.Number(row, "n")
			sum, _ := s.Number(row, "sum")
			sat, _ := s.Number(row, "sat")
			neg, _ := s.Number(row, "neg")
			addVotes(ns, int64(n), int64(sum), int64(sat), int64(neg))
		}
	}
	for _, s := range acts {
		for row := range s.Values {
			ns, ok := s.Number(row, "time")
			if !ok {
				continue
			}
			n, _ := s.Number(row, "n")
			v, _ := s.Number(row, "voted")
			addActs(ns, int64(n), int64(v))
		}
	}
	for i := range rep.Daily {
		rep.Daily[i] = *days[rep.Daily[i].Day]
	}
	return nil
}

// health reads how many hours each keypad sent heartbeats and the open
// device findings.
func (b *Builder) health(ctx context.Context, rep *Report, span string) error {
	r := rep.Request
	// Heartbeats carry org, site and counter, not operator or service: a
	// report for one operator or service shows the devices of its scope.
	hw := Request{Org: r.Org, Site: r.Site}.filter()
	res, err := b.DB.Query(ctx, `SELECT count("n") AS "hours" FROM (SELECT count("uptime_s") AS "n" FROM "heartbeat" WHERE `+
		span+hw+` GROUP BY time(1h), "device" fill(none)) GROUP BY "device"`)
	if err != nil {
		return fmt.Errorf("read heartbeats: %w", err)
	}
	hours := rep.Now.Sub(r.Period.Start).Hours()
	var seen int64
	for _, s := range res {
		rep.Health.Devices++
		seen += num(s, "hours")
	}
	if rep.Health.Devices > 0 && hours > 0 {
		rep.Health.Availability = min(1, float64(seen)/(float64(rep.Health.Devices)*hours))
	}
	rep.Health.Available = true
	if b.Alerts == nil {
		return nil
	}
	open, err := b.Alerts.Alerts(ctx, alert.Filter{State: "open", Org: r.Org, Site: r.Site})
	if err != nil {
		return fmt.Errorf("read findings: %w", err)
	}
	for _, a := range open {
		if a.Subject.Device == "" || !r.Caller.Allows(a.Subject.Org, a.Subject.Site) {
			continue
		}
		rep.Health.OpenFindings++
		if a.Kind == alert.KindWarrantyEnd || a.Kind == alert.KindReplacementDue {
			rep.Health.RemindersDue++
		}
	}
	return nil
}

// notices reads the negative-vote alerts that started in the period and
// how fast they were acknowledged.
func (b *Builder) notices(ctx context.Context, rep *Report) error {
	if b.Alerts == nil {
		return nil
	}
	r := rep.Request
	list, err := b.Alerts.Alerts(ctx, alert.Filter{Kind: alert.KindNegativeVote, Org: r.Org, Site: r.Site,
		Since: r.Period.Start, Limit: alert.MaxList})
	if err != nil {
		return fmt.Errorf("read notices: %w", err)
	}
	rep.Notices.Truncated = len(list) >= alert.MaxList
	var acks []time.Duration
	for _, a := range list {
		if a.StartsAt.Before(r.Period.Start) || !a.StartsAt.Before(rep.Now) ||
			!r.Caller.Allows(a.Subject.Org, a.Subject.Site) ||
			(r.Operator != "" && a.Subject.Operator != r.Operator) {
			continue
		}
		rep.Notices.Count++
		if !a.AckedAt.IsZero() {
			rep.Notices.Acknowledged++
			acks = append(acks, a.AckedAt.Sub(a.StartsAt))
		}
	}
	if len(acks) > 0 {
		sort.Slice(acks, func(i, j int) bool { return acks[i] < acks[j] })
		rep.Notices.MedianAck = acks[len(acks)/2]
		rep.Notices.MaxAck = slices.Max(acks)
	}
	return nil
}

// IsRequestError reports errors that are the request's fault (the API
// answers 400, or 404 for ErrNotFound).
func IsRequestError(err error) bool {
	for _, e := range []error{ErrPeriod, ErrLang, ErrFormat, ErrScope, ErrNotFound} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
