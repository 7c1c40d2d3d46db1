package templates

import (
	"time"

	"github.com/semko/semko/backend/alert"
)

// Document is a notice as one JSON document, in the language it was
// rendered in: what the MQTT channel publishes and the JSON webhook posts.
// Each adds its own version field (MQTT "v" as every payload under
// semko/v1, the webhook "version") and what only it has.
type Document struct {
	ID         string         `json:"id"`
	Kind       alert.Kind     `json:"kind"`
	Severity   alert.Severity `json:"severity"`
	Escalation int            `json:"escalation"`
	Repeat     bool           `json:"repeat,omitempty"`
	// Receiver names who the notice was written for; an app shows the
	// ones meant for its user.
	Receiver string    `json:"receiver"`
	Lang     string    `json:"lang"`
	Time     time.Time `json:"time"`
	// Subject and Text are the notice as a person reads it, in Lang.
	Subject string        `json:"subject"`
	Text    string        `json:"text"`
	Alerts  []alert.Alert `json:"alerts"`
}

// NewDocument is notice n as rendered in m, with alerts (n's, or the part
// of them one message carries).
func NewDocument(n alert.Notice, m Message, alerts []alert.Alert) Document {
	return Document{
		ID: n.ID, Kind: n.Kind, Severity: n.Severity, Escalation: n.Escalation, Repeat: n.Repeat,
		Receiver: n.Receiver.Name, Lang: m.Lang, Time: n.Time, Subject: m.Subject, Text: m.Text, Alerts: alerts,
	}
}
