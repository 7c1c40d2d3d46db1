// Package report builds the reports managers read instead of Grafana: the
// figures of one scope (an organisation, a site, an operator, a service)
// over one period (a week, a month, a quarter, today so far or a custom
// range), and renders them as PDF with charts, CSV and XLSX in English,
// Bulgarian or Russian.
//
// Every ratio is computed from counts and sums read from InfluxDB, never
// from means of means, so a report agrees with the dashboards over the same
// window.
package report

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/semko/semko/backend/access"
)

// Target is the participation the keypad reaches and reports are held
// against (the reference documents' 70%).
const Target = 0.70

// PriorWeight is how many votes' worth of the overall share each site or
// operator starts with in the fair ranking, as the rollup ranks.
const PriorWeight = 20

// Request says what to report on. Org is required unless the caller's
// scope is everything; Site, Operator and Service narrow it.
type Request struct {
	Org, Site, Operator, Service string
	Period                       Period
	Lang                         string
	// Caller is the caller's scope: a request outside it is ErrNotFound.
	Caller access.Scope
}

// Check validates r against the caller's scope. Out of scope is
// ErrNotFound, so a caller never learns that another organisation exists.
func (r Request) Check() error {
	if err := r.Period.Check(); err != nil {
		return err
	}
	if !slices.Contains(Langs, r.Lang) {
		return fmt.Errorf("%w: %q (en, bg or ru)", ErrLang, r.Lang)
	}
	for name, v := range map[string]string{"org": r.Org, "site": r.Site, "operator": r.Operator, "service": r.Service} {
		if len(v) > 64 || strings.ContainsFunc(v, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
			return fmt.Errorf("%w: %s is not a name", ErrScope, name)
		}
	}
	if r.Org == "" {
		if !r.Caller.All {
			return fmt.Errorf("%w: org is required", ErrScope)
		}
		if r.Site != "" || r.Operator != "" {
			return fmt.Errorf("%w: site and operator need org", ErrScope)
		}
		return nil
	}
	if !r.Caller.Allows(r.Org, r.Site) {
		return ErrNotFound
	}
	return nil
}

// Report is every figure of a report.
type Report struct {
	Request   Request
	Generated time.Time
	// Now is the end of what was counted: the period's end, or the time of
	// generation for a period still running.
	Now     time.Time
	Totals  Figures
	Prev    Figures  // the previous period
	Scores  [6]int64 // votes per score 1..5 (index 0 unused)
	Sites   []Row    // ranked, best first
	Ops     []Row    // operators, ranked, best first
	Daily   []Day
	HourMap [7][24]Cell // Monday..Sunday x hour of day, in the report's zone
	Notices Notices
	Health  Health
}

// Figures are the sums and counts the ratios come from.
type Figures struct {
	Votes, ScoreSum, Satisfied, Negative int64
	Activations, Voted                   int64 // closed activations, of which answered
	ServiceSum                           int64 // seconds of service of the rated visits
}

func (f *Figures) add(o Figures) {
	f.Votes += o.Votes
	f.ScoreSum += o.ScoreSum
	f.Satisfied += o.Satisfied
	f.Negative += o.Negative
	f.Activations += o.Activations
	f.Voted += o.Voted
	f.ServiceSum += o.ServiceSum
}

// Share is the satisfied share, ok false without votes.
func (f Figures) Share() (float64, bool) { return ratio(f.Satisfied, f.Votes) }

// Mean is the mean score, ok false without votes.
func (f Figures) Mean() (float64, bool) { return ratio(f.ScoreSum, f.Votes) }

// NegativeShare is the negative share, ok false without votes.
func (f Figures) NegativeShare() (float64, bool) { return ratio(f.Negative, f.Votes) }

// Participation is answered over closed activations, ok false without
// activations.
func (f Figures) Participation() (float64, bool) { return ratio(f.Voted, f.Activations) }

func ratio(a, b int64) (float64, bool) {
	if b == 0 {
		return 0, false
	}
	return float64(a) / float64(b), true
}

// Row is one ranked site or operator.
type Row struct {
	Org, Name string
	Figures
	// Shrunk is the satisfied share pulled toward the overall one by
	// PriorWeight votes; Rank orders by it (0: unranked, no votes).
	Shrunk float64
	Rank   int
}

// Day is one day's figures (midnight in the report's zone).
type Day struct {
	Day time.Time
	Figures
}

// Cell is one hour-of-week cell.
type Cell struct{ Votes, Satisfied int64 }

// Notices summarises the negative-vote alerts that started in the period.
type Notices struct {
	Count, Acknowledged int
	// MedianAck and MaxAck are times from the alert to its
	// acknowledgement, over the acknowledged ones.
	MedianAck, MaxAck time.Duration
	// Truncated: the alert store answered its maximum, so older notices of
	// the period may be missing.
	Truncated bool
}

// Health summarises the devices of the scope.
type Health struct {
	// Devices is the number of keypads that sent heartbeats in the period;
	// Availability the share of their hours with at least one heartbeat.
	Devices      int
	Availability float64
	// OpenFindings are open device alerts now; RemindersDue the open
	// warranty and replacement reminders among them.
	OpenFindings, RemindersDue int
	Available                  bool // false when health data could not be read
}

// rank fills Shrunk and Rank and sorts rows best first, unrated last by
// name, as the rollup ranks.
func rank(rows []Row, prior float64) {
	for i := range rows {
		if rows[i].Votes > 0 {
			rows[i].Shrunk = (float64(rows[i].Satisfied) + PriorWeight*prior) / (float64(rows[i].Votes) + PriorWeight)
		}
	}
	slices.SortFunc(rows, func(a, b Row) int {
		if (a.Votes > 0) != (b.Votes > 0) {
			if a.Votes > 0 {
				return -1
			}
			return 1
		}
		switch {
		case a.Shrunk != b.Shrunk:
			if a.Shrunk > b.Shrunk {
				return -1
			}
			return 1
		case a.Votes != b.Votes:
			if a.Votes > b.Votes {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Org+"/"+a.Name, b.Org+"/"+b.Name)
	})
	for i := range rows {
		if rows[i].Votes > 0 {
			rows[i].Rank = i + 1
		}
	}
}
