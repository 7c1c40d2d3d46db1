// Package alert is Semko's alert model: findings raised by diagnostics and
// by the vote stream, one open alert per subject and kind, its state
// (firing, acknowledged, resolved) and the pipeline that brings it to
// people.
package alert

import (
	"context"
	"strings"
	"time"
)

// Kind says what an alert is about. Kinds are InfluxDB tag values of the
// `alert` measurement and keys of routing rules, so they are stable.
type Kind string

// Device diagnostics.
const (
	KindOffline          Kind = "offline"           // no heartbeat for longer than the device's timeout
	KindStuckKey         Kind = "stuck_key"         // one key pressing itself, or an implausible share
	KindDeadPanel        Kind = "dead_panel"        // the instruction panel reports a fault
	KindDeadBacklight    Kind = "dead_backlight"    // the backlight reports a fault
	KindSelfTestFailed   Kind = "selftest_failed"   // the remote self-test failed
	KindSelfTestMissing  Kind = "selftest_missing"  // the remote self-test got no answer
	KindSilentUnit       Kind = "silent_unit"       // activations but no votes for a long stretch
	KindClockDrift       Kind = "clock_drift"       // keypad clock off by more than the bound
	KindEdgeClock        Kind = "edge_clock"        // edge clock off the backend's, or votes held apart for their time
	KindOutboxBacklog    Kind = "outbox_backlog"    // the edge's outbox keeps growing
	KindOutdatedFirmware Kind = "outdated_firmware" // older than the fleet's target version
	KindWarrantyEnd      Kind = "warranty_end"      // warranty ends soon (lifecycle reminder)
	KindReplacementDue   Kind = "replacement_due"   // three-year service life reached or near
	// KindSiteOffline is raised by the manager when every device of a site
	// is offline; it inhibits the devices' own offline alerts.
	KindSiteOffline Kind = "site_offline"
)

// Ratings.
const (
	KindNegativeVote     Kind = "negative_vote"     // a customer pressed a negative button
	KindNegativeStreak   Kind = "negative_streak"   // a run of negative votes at one site
	KindSatisfactionDrop Kind = "satisfaction_drop" // a site's satisfied share fell below its threshold
	KindPositiveStreak   Kind = "positive_streak"   // recognition, when enabled
)

// KindIncidentOverdue is raised by the incident desk when an incident was
// not passed on or closed by its deadline; the subject's counter names the
// incident ("incident-42").
const KindIncidentOverdue Kind = "incident_overdue"

// Severity orders alerts for routing and display.
type Severity string

const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// State is where an alert is in its life.
type State string

const (
	StateFiring       State = "firing"
	StateAcknowledged State = "acknowledged"
	StateResolved     State = "resolved"
)

// Subject is what an alert is about. Fields not relevant stay empty: a
// device alert names the device and where it stands, a site alert only the
// organisation and site.
type Subject struct {
	Org      string `json:"org,omitempty"`
	Site     string `json:"site,omitempty"`
	Counter  string `json:"counter,omitempty"`
	Device   string `json:"device,omitempty"`
	Operator string `json:"operator,omitempty"`
}

// Key identifies the subject: at most one open alert exists per subject and
// kind.
func (s Subject) Key() string {
	return strings.Join([]string{s.Org, s.Site, s.Counter, s.Device, s.Operator}, "/")
}

// Finding is one observation that should be (or stay) an alert: what a
// diagnostic or the vote stream reports. Raising the same kind for the same
// subject again updates the open alert instead of opening another.
type Finding struct {
	Kind     Kind     `json:"kind"`
	Severity Severity `json:"severity"`
	Subject  Subject  `json:"subject"`
	// Message says what happened, for people: "Keypad kp-0012 at Counter 3
	// has sent no heartbeat for 14 minutes".
	Message string `json:"message"`
	// Hint says what to do about it.
	Hint string    `json:"hint,omitempty"`
	Time time.Time `json:"time"`
	// Details carries figures for templates and the API (e.g. "score": "1").
	Details map[string]string `json:"details,omitempty"`
}

// Key is the identity of the alert a finding belongs to.
func (f Finding) Key() string { return string(f.Kind) + "|" + f.Subject.Key() }

// Raiser takes findings. Diagnostics and ingest depend on this interface,
// not on the alert manager, so they can be tested with a recorder.
type Raiser interface {
	// Raise opens the alert for the finding's kind and subject, or updates
	// the open one.
	Raise(ctx context.Context, f Finding) error
	// Resolve closes the open alert of kind for subject, if any, because
	// its condition cleared.
	Resolve(ctx context.Context, kind Kind, subject Subject, reason string) error
}
