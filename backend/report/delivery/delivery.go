// Package delivery sends reports by e-mail after each period closes: an
// account subscribes (scope, period, format, language, recipients), and a
// gocron job sends last week's report on Monday at 07:00 and last month's
// or quarter's on the 1st at 07:00, in the scope's time zone. Each
// delivery is recorded, so a period is sent once; a failed send is retried
// with a growing pause.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"time"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/report"
)

// Errors of stores and validation.
var (
	ErrNotFound = errors.New("subscription not found")
	ErrInvalid  = errors.New("invalid subscription")
)

// Subscription is one account's standing order for a report.
type Subscription struct {
	ID      int64  `json:"id"`
	Account string `json:"account"`
	// Scope is the account's scope when it subscribed: the report never
	// reaches beyond it.
	Scope      access.Scope `json:"scope"`
	Org        string       `json:"org,omitempty"`
	Site       string       `json:"site,omitempty"`
	Operator   string       `json:"operator,omitempty"`
	Service    string       `json:"service,omitempty"`
	Period     report.Kind  `json:"period"` // week, month or quarter
	Format     string       `json:"format"` // pdf, csv or xlsx
	Lang       string       `json:"lang"`
	Recipients []string     `json:"recipients"`
	Created    time.Time    `json:"created"`
}

// Validate reports a subscription that can never be sent.
func (s Subscription) Validate() error {
	if s.Account == "" {
		return fmt.Errorf("%w: account is required", ErrInvalid)
	}
	switch s.Period {
	case report.Week, report.Month, report.Quarter:
	default:
		return fmt.Errorf("%w: period must be week, month or quarter", ErrInvalid)
	}
	if !slices.Contains(report.Formats, s.Format) {
		return fmt.Errorf("%w: format must be pdf, csv or xlsx", ErrInvalid)
	}
	if len(s.Recipients) == 0 || len(s.Recipients) > 50 {
		return fmt.Errorf("%w: 1 to 50 recipients", ErrInvalid)
	}
	for _, r := range s.Recipients {
		if _, err := mail.ParseAddress(r); err != nil {
			return fmt.Errorf("%w: recipient %q: %v", ErrInvalid, r, err)
		}
	}
	// The request the report will be built from must pass too.
	p, _ := report.NewPeriod(s.Period, time.Now(), time.UTC)
	if err := s.request(p).Check(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

func (s Subscription) request(p report.Period) report.Request {
	return report.Request{Org: s.Org, Site: s.Site, Operator: s.Operator, Service: s.Service, Period: p, Lang: s.Lang, Caller: s.Scope}
}

// Status of a delivery.
type Status string

const (
	StatusSent   Status = "sent"
	StatusFailed Status = "failed" // retried until Attempts reaches MaxAttempts
)

// Delivery records the sending of one subscription's report for one
// period: at most one per (Subscription, PeriodStart).
type Delivery struct {
	Subscription int64     `json:"subscription"`
	PeriodStart  time.Time `json:"period_start"`
	Status       Status    `json:"status"`
	Attempts     int       `json:"attempts"`
	LastError    string    `json:"last_error,omitempty"`
	// At is when it was sent, or when the last attempt failed.
	At time.Time `json:"at"`
}

// Store keeps subscriptions and deliveries.
type Store interface {
	// Subscribe stores s, assigning s.ID.
	Subscribe(ctx context.Context, s *Subscription) error
	// Unsubscribe removes a subscription and its deliveries, or returns
	// ErrNotFound.
	Unsubscribe(ctx context.Context, id int64) error
	// Subscriptions lists every subscription, by ID.
	Subscriptions(ctx context.Context) ([]Subscription, error)
	// Delivery returns the delivery of one period, ok false if none.
	Delivery(ctx context.Context, sub int64, periodStart time.Time) (d Delivery, ok bool, err error)
	// Record inserts or replaces the delivery of (d.Subscription,
	// d.PeriodStart).
	Record(ctx context.Context, d Delivery) error
	// Deliveries lists a subscription's deliveries, oldest period first.
	Deliveries(ctx context.Context, sub int64) ([]Delivery, error)
}
