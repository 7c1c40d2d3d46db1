// Package calendar counts working time on a site's business calendar:
// opening hours per weekday, holidays and an IANA time zone. An alert's
// deadline of "3 working hours" raised on Friday evening falls due on
// Monday late morning, not on Saturday.
//
// Opening hours are wall-clock times in the calendar's zone, so a DST
// change moves them with the clocks; working time itself is real elapsed
// time (a shift that spans the night of a DST change is an hour shorter or
// longer).
package calendar

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every error Parse returns for a bad spec.
var ErrInvalid = errors.New("invalid calendar")

// ErrNeverOpen is returned by Add when no working time exists within the
// search horizon (every day a holiday, or no opening hours at all).
var ErrNeverOpen = errors.New("calendar never open")

// horizon bounds the search for working time: a calendar closed for longer
// than this is a configuration mistake, not a long holiday.
const horizon = 366 * 2

// Spec is the configuration form of a calendar.
type Spec struct {
	// Timezone is an IANA name such as "Europe/Sofia". Default UTC.
	Timezone string `yaml:"timezone" json:"timezone"`
	// Hours maps a weekday ("mon".."sun", or "mon-fri") to its opening
	// hours: "09:00-17:30", or several spans "08:30-12:00,13:00-17:00";
	// "24:00" closes at midnight. A weekday not named is closed.
	Hours map[string]string `yaml:"hours" json:"hours"`
	// Holidays are closed dates, "2026-12-24".
	Holidays []string `yaml:"holidays" json:"holidays"`
}

// span is an opening interval within one day, as offsets from midnight.
type span struct{ from, to time.Duration }

type date struct {
	y int
	m time.Month
	d int
}

// Calendar is an immutable business calendar, safe for concurrent use.
type Calendar struct {
	loc      *time.Location
	week     [7][]span // by time.Weekday
	holidays map[date]bool
}

// Always is open every hour of every day, in UTC: working time equals
// elapsed time.
func Always() *Calendar {
	c := &Calendar{loc: time.UTC, holidays: map[date]bool{}}
	for d := range c.week {
		c.week[d] = []span{{0, 24 * time.Hour}}
	}
	return c
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// Parse checks s and builds its Calendar.
func Parse(s Spec) (*Calendar, error) {
	c := &Calendar{loc: time.UTC, holidays: make(map[date]bool, len(s.Holidays))}
	if s.Timezone != "" {
		loc, err := time.LoadLocation(s.Timezone)
		if err != nil {
			return nil, fmt.Errorf("%w: timezone %q: %w", ErrInvalid, s.Timezone, err)
		}
		c.loc = loc
	}
	for key, val := range s.Hours {
		days, err := parseDays(key)
		if err != nil {
			return nil, err
		}
		spans, err := parseSpans(val)
		if err != nil {
			return nil, fmt.Errorf("%w: hours %s: %w", ErrInvalid, key, err)
		}
		for _, d := range days {
			if c.week[d] != nil {
				return nil, fmt.Errorf("%w: %s named twice in hours", ErrInvalid, d)
			}
			c.week[d] = spans
		}
	}
	for _, h := range s.Holidays {
		t, err := time.Parse(time.DateOnly, h)
		if err != nil {
			return nil, fmt.Errorf("%w: holiday %q: want YYYY-MM-DD", ErrInvalid, h)
		}
		c.holidays[date{t.Year(), t.Month(), t.Day()}] = true
	}
	return c, nil
}

func parseDays(key string) ([]time.Weekday, error) {
	key = strings.ToLower(strings.TrimSpace(key))
	from, to, isRange := strings.Cut(key, "-")
	a, ok1 := dayNames[from]
	if !isRange {
		if !ok1 {
			return nil, fmt.Errorf("%w: unknown weekday %q", ErrInvalid, key)
		}
		return []time.Weekday{a}, nil
	}
	b, ok2 := dayNames[to]
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("%w: unknown weekday range %q", ErrInvalid, key)
	}
	// Ranges run Monday-first ("mon-sun"), so Sunday counts as day 7.
	ia, ib := (int(a)+6)%7, (int(b)+6)%7
	if ia > ib {
		return nil, fmt.Errorf("%w: weekday range %q runs backwards", ErrInvalid, key)
	}
	var days []time.Weekday
	for i := ia; i <= ib; i++ {
		days = append(days, time.Weekday((i+1)%7))
	}
	return days, nil
}

func parseSpans(s string) ([]span, error) {
	var spans []span
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" || strings.EqualFold(part, "closed") {
			continue
		}
		a, b, ok := strings.Cut(part, "-")
		if !ok {
			return nil, fmt.Errorf("span %q: want HH:MM-HH:MM", part)
		}
		from, err := parseClock(a)
		if err != nil {
			return nil, err
		}
		to, err := parseClock(b)
		if err != nil {
			return nil, err
		}
		if to <= from {
			return nil, fmt.Errorf("span %q ends before it starts (split a night shift at 24:00)", part)
		}
		spans = append(spans, span{from, to})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].from < spans[j].from })
	for i := 1; i < len(spans); i++ {
		if spans[i].from < spans[i-1].to {
			return nil, fmt.Errorf("spans overlap in %q", s)
		}
	}
	if spans == nil {
		spans = []span{} // named but closed: distinct from "not named" only while parsing
	}
	return spans, nil
}

func parseClock(s string) (time.Duration, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("clock %q: want HH:MM, 00:00 to 24:00", s)
	}
	return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, nil
}

// Location is the calendar's time zone.
func (c *Calendar) Location() *time.Location { return c.loc }

// intervals returns the day's opening intervals as instants, for the
// calendar day containing t. A wall-clock time that a DST change skips is
// moved forward by time.Date, which is what a clock on the wall does too.
func (c *Calendar) intervals(y int, m time.Month, d int) [][2]time.Time {
	if c.holidays[date{y, m, d}] {
		return nil
	}
	midnight := time.Date(y, m, d, 0, 0, 0, 0, c.loc)
	var out [][2]time.Time
	for _, s := range c.week[midnight.Weekday()] {
		out = append(out, [2]time.Time{c.wall(y, m, d, s.from), c.wall(y, m, d, s.to)})
	}
	return out
}

func (c *Calendar) wall(y int, m time.Month, d int, off time.Duration) time.Time {
	return time.Date(y, m, d, int(off/time.Hour), int(off%time.Hour/time.Minute), 0, 0, c.loc)
}

// Open reports whether t falls in opening hours.
func (c *Calendar) Open(t time.Time) bool {
	lt := t.In(c.loc)
	for _, iv := range c.intervals(lt.Date()) {
		if !t.Before(iv[0]) && t.Before(iv[1]) {
			return true
		}
	}
	return false
}

// Add returns the instant at which work of working time has elapsed since
// start, counting only opening hours. A start outside opening hours begins
// counting at the next opening. Add(start, 0) is start itself.
func (c *Calendar) Add(start time.Time, work time.Duration) (time.Time, error) {
	if work <= 0 {
		return start, nil
	}
	cursor := start
	day := start.In(c.loc)
	y, m, d := day.Date()
	for range horizon {
		for _, iv := range c.intervals(y, m, d) {
			from, to := iv[0], iv[1]
			if !to.After(cursor) {
				continue
			}
			if from.Before(cursor) {
				from = cursor
			}
			if avail := to.Sub(from); avail >= work {
				return from.Add(work), nil
			} else {
				work -= avail
			}
			cursor = to
		}
		next := time.Date(y, m, d+1, 0, 0, 0, 0, c.loc)
		y, m, d = next.Date()
	}
	return time.Time{}, fmt.Errorf("%w: within %d days of %s", ErrNeverOpen, horizon, start.Format(time.RFC3339))
}

// Between returns the working time in [from, to).
func (c *Calendar) Between(from, to time.Time) time.Duration {
	var total time.Duration
	day := from.In(c.loc)
	y, m, d := day.Date()
	for i := 0; i < horizon; i++ {
		dayStart := time.Date(y, m, d, 0, 0, 0, 0, c.loc)
		if !dayStart.Before(to) {
			break
		}
		for _, iv := range c.intervals(y, m, d) {
			a, b := iv[0], iv[1]
			if a.Before(from) {
				a = from
			}
			if b.After(to) {
				b = to
			}
			if b.After(a) {
				total += b.Sub(a)
			}
		}
		next := time.Date(y, m, d+1, 0, 0, 0, 0, c.loc)
		y, m, d = next.Date()
	}
	return total
}
