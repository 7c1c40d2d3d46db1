package alert

import (
	"context"
	"time"
)

// Notifier delivers one notice to one receiver over one channel (e-mail,
// webhook, MQTT). The channels live in backend/alert/notify/...; the manager only
// knows this interface.
//
// As in Alertmanager's notify package, retry reports whether a failed
// delivery may succeed if tried again (a timeout, a 5xx, a refused
// connection) or never will (a rejected address, a 4xx): the pipeline
// retries only recoverable failures, with backoff, until its context ends.
//
// Every Notifier gets every notice: one whose channel the receiver does not
// have (no e-mail address, no webhook URL, MQTT false) returns (false, nil)
// without doing anything.
type Notifier interface {
	Notify(ctx context.Context, n Notice) (retry bool, err error)
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, n Notice) (bool, error)

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, n Notice) (bool, error) { return f(ctx, n) }

// Receiver is a named destination from the alerts configuration: a person
// or a team and the channels that reach them. A channel left empty is not
// used.
type Receiver struct {
	Name    string   `yaml:"name" json:"name"`
	Email   []string `yaml:"email,omitempty" json:"email,omitempty"`
	Webhook string   `yaml:"webhook,omitempty" json:"webhook,omitempty"` // URL of a JSON POST endpoint
	// MQTT publishes the notice under the alerts topics so phone apps
	// subscribed there see it.
	MQTT bool `yaml:"mqtt,omitempty" json:"mqtt,omitempty"`
	// Lang is the notice language: "bg", "ru" or "en" (the default).
	Lang string `yaml:"lang,omitempty" json:"lang,omitempty"`
}

// Notice is what a Notifier sends: a group of alerts for one receiver.
type Notice struct {
	// ID is unique per delivery attempt series; channels may use it as an
	// idempotency key (webhook header, e-mail Message-ID).
	ID       string   `json:"id"`
	Receiver Receiver `json:"receiver"`
	// Group names the group the alerts share, e.g. "org/site|offline".
	Group string `json:"group"`
	// Kind and Severity are the group's kind and its highest severity.
	Kind     Kind     `json:"kind"`
	Severity Severity `json:"severity"`
	Alerts   []Alert  `json:"alerts"`
	// Escalation is the route level that sent this notice: 0 for the first
	// receivers, 1 and above after deadlines passed unacknowledged.
	Escalation int `json:"escalation"`
	// Repeat is true when the notice reminds of alerts already notified.
	Repeat bool `json:"repeat,omitempty"`
	// Lang is the language to write in (the receiver's, else the
	// configured default).
	Lang string    `json:"lang"`
	Time time.Time `json:"time"`
}

// Alert is one alert as the manager keeps it: the latest finding for its
// kind and subject plus its life so far.
type Alert struct {
	ID       int64    `json:"id"`
	Kind     Kind     `json:"kind"`
	Severity Severity `json:"severity"`
	Subject  Subject  `json:"subject"`
	State    State    `json:"state"`
	Message  string   `json:"message"`
	Hint     string   `json:"hint,omitempty"`
	// Details carries figures for templates (score, counter name, operator,
	// service, service duration ...), from the latest finding.
	Details map[string]string `json:"details,omitempty"`
	// Count is how many findings this alert has absorbed.
	Count     int       `json:"count"`
	StartsAt  time.Time `json:"starts_at"`
	LastSeen  time.Time `json:"last_seen"`
	UpdatedAt time.Time `json:"updated_at"`
	// DueAt is when the alert escalates if nobody acknowledges it.
	DueAt time.Time `json:"due_at,omitempty"`
	// NotifiedAt is when a notice last went out with this alert; after a
	// restart it keeps the manager from notifying again before the repeat
	// interval.
	NotifiedAt time.Time `json:"notified_at,omitzero"`
	Escalation int       `json:"escalation"`
	AckedBy    string    `json:"acked_by,omitempty"`
	AckComment string    `json:"ack_comment,omitempty"`
	AckedAt    time.Time `json:"acked_at,omitempty"`
	ResolvedAt time.Time `json:"resolved_at,omitempty"`
	// ResolvedBy is a person, or empty when the condition cleared by itself.
	ResolvedBy string `json:"resolved_by,omitempty"`
	Reason     string `json:"reason,omitempty"`
	// MutedBy says why the alert sends no notices now ("silence <id>",
	// "maintenance <name>", "inhibited by site_offline"). Filled in by
	// Manager.List for open alerts; never stored.
	MutedBy string `json:"muted_by,omitempty"`
}

// Key is the identity of the alert: kind and subject.
func (a Alert) Key() string { return string(a.Kind) + "|" + a.Subject.Key() }

// Open reports whether the alert is not yet resolved.
func (a Alert) Open() bool { return a.State != StateResolved }
