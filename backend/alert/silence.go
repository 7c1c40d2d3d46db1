package alert

import (
	"fmt"
	"strings"
	"time"

	"github.com/semko/semko/backend/alert/calendar"
)

// Labels an alert can be matched on by silences, maintenance windows and
// routes.
const (
	LabelKind     = "kind"
	LabelSeverity = "severity"
	LabelOrg      = "org"
	LabelSite     = "site"
	LabelCounter  = "counter"
	LabelDevice   = "device"
	LabelOperator = "operator"
)

// Label returns the alert's value for one of the Label... names.
func (a Alert) Label(name string) (string, bool) {
	switch name {
	case LabelKind:
		return string(a.Kind), true
	case LabelSeverity:
		return string(a.Severity), true
	case LabelOrg:
		return a.Subject.Org, true
	case LabelSite:
		return a.Subject.Site, true
	case LabelCounter:
		return a.Subject.Counter, true
	case LabelDevice:
		return a.Subject.Device, true
	case LabelOperator:
		return a.Subject.Operator, true
	}
	return "", false
}

// Matchers select alerts by label: every named label must equal one of the
// listed values, given comma-separated ("kind: offline,stuck_key").
type Matchers map[string]string

// Check reports an unknown label name.
func (ms Matchers) Check() error {
	for name, v := range ms {
		if _, ok := (Alert{}).Label(name); !ok {
			return fmt.Errorf("%w: unknown label %q (want kind, severity, org, site, counter, device or operator)", ErrInvalid, name)
		}
		if strings.TrimSpace(v) == "" {
			return fmt.Errorf("%w: label %q has no value", ErrInvalid, name)
		}
	}
	return nil
}

// Match reports whether a has every label ms asks for.
func (ms Matchers) Match(a Alert) bool {
	for name, want := range ms {
		got, _ := a.Label(name)
		ok := false
		for v := range strings.SplitSeq(want, ",") {
			if strings.TrimSpace(v) == got {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// Silence mutes the alerts its matchers select between StartsAt and
// EndsAt. Muted alerts stay in the store and the API; they only send no
// notices.
type Silence struct {
	ID        string    `json:"id"`
	Matchers  Matchers  `json:"matchers"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	CreatedBy string    `json:"created_by"`
	Comment   string    `json:"comment,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Validate checks the silence on its own.
func (s Silence) Validate() error {
	if len(s.Matchers) == 0 {
		return fmt.Errorf("%w: a silence needs at least one matcher", ErrInvalid)
	}
	if err := s.Matchers.Check(); err != nil {
		return err
	}
	if s.EndsAt.IsZero() || !s.EndsAt.After(s.StartsAt) {
		return fmt.Errorf("%w: a silence needs an end after its start", ErrInvalid)
	}
	if strings.TrimSpace(s.CreatedBy) == "" {
		return fmt.Errorf("%w: a silence needs its author (created_by)", ErrInvalid)
	}
	return nil
}

// Active reports whether the silence mutes at t.
func (s Silence) Active(t time.Time) bool { return !t.Before(s.StartsAt) && t.Before(s.EndsAt) }

// MaintenanceWindow mutes the alerts its matchers select whenever its
// calendar is open: "every Sunday 00:00-06:00 for site s1".
type MaintenanceWindow struct {
	Name     string
	Matchers Matchers
	Calendar *calendar.Calendar
}
