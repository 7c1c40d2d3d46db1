package report

import (
	"errors"
	"fmt"
	"time"
)

// Kind is what a period covers.
type Kind string

// The periods a report covers. Week starts on Monday; all bounds are
// midnights in the report's time zone.
const (
	Week    Kind = "week"
	Month   Kind = "month"
	Quarter Kind = "quarter"
	Today   Kind = "today" // today so far
	Custom  Kind = "custom"
)

// MaxRange bounds a custom period: a year and a day (a leap year's whole
// year fits). Longer reports are refused rather than left to run for
// minutes against raw points.
const MaxRange = 367 * 24 * time.Hour

// Errors of the request; the API answers 400 for each except ErrNotFound.
var (
	ErrPeriod = errors.New("invalid period")
	ErrLang   = errors.New("unknown language")
	ErrFormat = errors.New("unknown format")
	ErrScope  = errors.New("invalid scope")
	// ErrNotFound: the scope asked for is outside the caller's (the API
	// answers 404, as for something that does not exist).
	ErrNotFound = errors.New("not found")
)

// Period is a half-open interval [Start, End) of a kind.
type Period struct {
	Kind       Kind
	Start, End time.Time
}

// NewPeriod returns the period of kind k that contains day, in loc. For
// Custom use CustomPeriod.
func NewPeriod(k Kind, day time.Time, loc *time.Location) (Period, error) {
	d := day.In(loc)
	mid := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc)
	switch k {
	case Week:
		start := mid.AddDate(0, 0, -((int(mid.Weekday()) + 6) % 7))
		return Period{k, start, start.AddDate(0, 0, 7)}, nil
	case Month:
		start := time.Date(d.Year(), d.Month(), 1, 0, 0, 0, 0, loc)
		return Period{k, start, start.AddDate(0, 1, 0)}, nil
	case Quarter:
		m := time.Month((int(d.Month())-1)/3*3 + 1)
		start := time.Date(d.Year(), m, 1, 0, 0, 0, 0, loc)
		return Period{k, start, start.AddDate(0, 3, 0)}, nil
	case Today:
		return Period{k, mid, mid.AddDate(0, 0, 1)}, nil
	}
	return Period{}, fmt.Errorf("%w: kind %q is not week, month, quarter, today or custom", ErrPeriod, k)
}

// CustomPeriod is the days from first to last inclusive, in loc.
func CustomPeriod(first, last time.Time, loc *time.Location) (Period, error) {
	f, l := first.In(loc), last.In(loc)
	start := time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, loc)
	end := time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc).AddDate(0, 0, 1)
	p := Period{Custom, start, end}
	return p, p.Check()
}

// Check reports an empty, reversed or too long period.
func (p Period) Check() error {
	switch {
	case p.Start.IsZero() || p.End.IsZero():
		return fmt.Errorf("%w: start and end are required", ErrPeriod)
	case !p.End.After(p.Start):
		return fmt.Errorf("%w: it ends (%s) before it starts (%s)", ErrPeriod,
			p.End.Format(time.DateOnly), p.Start.Format(time.DateOnly))
	case p.End.Sub(p.Start) > MaxRange:
		return fmt.Errorf("%w: %d days is longer than a report covers (at most 367)", ErrPeriod,
			int(p.End.Sub(p.Start).Hours()/24))
	}
	return nil
}

// Previous is the period of the same kind just before p: the previous
// week, month or quarter, or for custom periods and today the same length
// ending where p starts.
func (p Period) Previous() Period {
	loc := p.Start.Location()
	switch p.Kind {
	case Week:
		return Period{p.Kind, p.Start.AddDate(0, 0, -7), p.Start}
	case Month:
		return Period{p.Kind, p.Start.AddDate(0, -1, 0), p.Start}
	case Quarter:
		return Period{p.Kind, p.Start.AddDate(0, -3, 0), p.Start}
	case Today:
		return Period{p.Kind, p.Start.AddDate(0, 0, -1), p.Start}
	}
	days := int(p.End.Sub(p.Start).Round(24*time.Hour).Hours() / 24)
	return Period{p.Kind, p.Start.AddDate(0, 0, -days).In(loc), p.Start}
}

// Days is the midnights of every day of p, in its location.
func (p Period) Days() []time.Time {
	var out []time.Time
	for d := p.Start; d.Before(p.End) && len(out) <= 400; d = d.AddDate(0, 0, 1) {
		out = append(out, d)
	}
	return out
}
