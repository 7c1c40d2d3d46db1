// Package incident is the incident desk: every complaint and every thanks
// a customer leaves reaches Customer Service, is passed on to the
// department's responsible person within the department's maximum time
// (working hours on the site's business calendar), is worked on with a
// comment at each step and is closed with its outcome and whether the
// customer was called back ("+1 call"). Every step is kept as a trail.
//
// The package holds the model, the interaction-error checks, the life
// cycle (Desk), attachment files and the Store interface; SQLite is in
// incident/sqlite, the HTTP API in incident/incidentapi, e-mail intake in
// incident/mailintake.
package incident

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Channel is how the incident reached the company.
type Channel string

// The channels. keypad_negative and nps_detractor are opened from a
// negative-vote notice or an NPS detractor's answer.
const (
	ChannelInPerson       Channel = "in_person"
	ChannelPhone          Channel = "phone"
	ChannelEmail          Channel = "email"
	ChannelWebForm        Channel = "web_form"
	ChannelKeypadNegative Channel = "keypad_negative"
	ChannelNPSDetractor   Channel = "nps_detractor"
)

// Channels lists every channel, in the order forms show them.
var Channels = []Channel{ChannelInPerson, ChannelPhone, ChannelEmail, ChannelWebForm, ChannelKeypadNegative, ChannelNPSDetractor}

// Type is what the incident is about.
type Type string

// The five incident types of Customer Service practice, and thanks.
const (
	TypePromotion    Type = "promotion_terms"     // a claim about the terms of a promotion
	TypeConsultation Type = "poor_consultation"   // a poor consultation at purchase
	TypeQuality      Type = "product_quality"     // a conflict about the product's quality
	TypeCertificate  Type = "quality_certificate" // the customer asks for a quality certificate
	TypeService      Type = "poor_service"        // a service poorly provided
	TypeThanks       Type = "thanks"              // not an incident: a customer's thanks
)

// BuiltinTypes are the types every desk knows; the configuration adds more.
var BuiltinTypes = []Type{TypePromotion, TypeConsultation, TypeQuality, TypeCertificate, TypeService, TypeThanks}

// State is where an incident is in its life.
type State string

// The states. Reopening returns a closed incident to in_progress.
const (
	StateRegistered State = "registered"
	StatePassed     State = "passed"
	StateInProgress State = "in_progress"
	StateClosed     State = "closed"
)

// Action is what a step of the trail did.
type Action string

// The actions of the trail.
const (
	ActionRegistered Action = "registered"
	ActionPassed     Action = "passed"
	ActionUpdated    Action = "updated"
	ActionAttached   Action = "attached"
	ActionClosed     Action = "closed"
	ActionReopened   Action = "reopened"
	ActionOverdue    Action = "overdue" // the deadline passed; escalated
	ActionPurged     Action = "purged"  // the customer's personal data deleted
)

// Attachment is a stored file: a scan of a claim, a receipt, a photo.
// Files are kept under their content hash, so the same scan attached twice
// is stored once.
type Attachment struct {
	Hash   string `json:"hash"` // hex SHA-256 of the content
	Name   string `json:"name"`
	Type   string `json:"type"` // image/jpeg, image/png, image/gif, application/pdf
	Size   int64  `json:"size"`
	Width  int    `json:"width,omitempty"` // pixels, images only
	Height int    `json:"height,omitempty"`
}

// Incident is one complaint or thanks and its life so far.
type Incident struct {
	ID         int64   `json:"id"`
	Org        string  `json:"org"`
	Site       string  `json:"site"`
	Department string  `json:"department"`
	Channel    Channel `json:"channel"`
	Type       Type    `json:"type"`
	State      State   `json:"state"`
	// CustomerName and CustomerContact are personal data: optional, and
	// deleted RetainPersonal after the incident is closed.
	CustomerName    string `json:"customer_name,omitempty"`
	CustomerContact string `json:"customer_contact,omitempty"`
	// RemarkNo is the running number of the remark in the shop's book or
	// the document system.
	RemarkNo     string       `json:"remark_no,omitempty"`
	Description  string       `json:"description"`
	Attachments  []Attachment `json:"attachments,omitempty"`
	RegisteredBy string       `json:"registered_by"`
	// SourceAlert is the negative-vote alert the incident was opened from.
	SourceAlert int64 `json:"source_alert,omitempty"`
	// PassedTo is the responsible account the incident was passed to.
	PassedTo  string    `json:"passed_to,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	PassedAt  time.Time `json:"passed_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at"`
	ClosedAt  time.Time `json:"closed_at,omitzero"`
	// DueAt is the current deadline: to pass on while registered, to close
	// once passed on (the department's maximum time in working hours).
	DueAt time.Time `json:"due_at,omitzero"`
	// Overdue is set when DueAt passed with the stage unfinished; cleared
	// when the next stage starts with a new deadline.
	Overdue bool `json:"overdue,omitempty"`
	// Late counts the deadlines this incident missed (late reactions).
	Late       int    `json:"late,omitempty"`
	Outcome    string `json:"outcome,omitempty"`
	CalledBack bool   `json:"called_back"` // the "+1 call" made
	// DelayReason says why a late close took long (one of the configured
	// reasons).
	DelayReason string `json:"delay_reason,omitempty"`
	Reopened    int    `json:"reopened,omitempty"`
	// Errors are the interaction errors found on register and pass-on, by
	// code (see ErrorCodes); kept for the figures.
	Errors   map[string]int `json:"errors,omitempty"`
	PurgedAt time.Time      `json:"purged_at,omitzero"`
}

// Open reports whether the incident is not closed.
func (in Incident) Open() bool { return in.State != StateClosed }

// Step is one entry of an incident's trail.
type Step struct {
	ID         int64     `json:"id"`
	IncidentID int64     `json:"incident_id"`
	Time       time.Time `json:"time"`
	Action     Action    `json:"action"`
	State      State     `json:"state"` // the state after the step
	Actor      string    `json:"actor,omitempty"`
	Comment    string    `json:"comment,omitempty"`
	To         string    `json:"to,omitempty"` // pass-on: the responsible account
}

// Interaction error codes: what slows Customer Service down when a shop
// passes an incident on.
const (
	ErrCodeDocuments  = "documents"  // not every document the type needs is attached
	ErrCodeComment    = "comment"    // no comment with the incident
	ErrCodeRemark     = "remark"     // the remark's number is missing
	ErrCodeName       = "name"       // the customer's name is implausible (illegible)
	ErrCodeResolution = "resolution" // a scan below the configured resolution
)

// ErrorCodes lists the interaction errors; the figures have a field each.
var ErrorCodes = []string{ErrCodeDocuments, ErrCodeComment, ErrCodeRemark, ErrCodeName, ErrCodeResolution}

// Sentinel errors; handlers map them to HTTP status codes.
var (
	ErrNotFound   = errors.New("incident not found")
	ErrInvalid    = errors.New("invalid incident")
	ErrTransition = errors.New("not allowed in this state")
	ErrTooLarge   = errors.New("attachment too large")
	ErrFileType   = errors.New("attachment type not accepted")
	// ErrUnreadable: an upload broke off or was malformed while being read.
	ErrUnreadable = errors.New("attachment could not be read")
)

// FieldErrors are problems by form field ("customer_name", "remark_no",
// "attachments", ...), so a form shows each next to its field. Messages
// are short English sentences; Codes keeps the interaction-error code of
// the fields that have one.
type FieldErrors struct {
	Fields map[string]string `json:"fields"`
	Codes  map[string]string `json:"codes,omitempty"` // field -> interaction error code
}

func (fe *FieldErrors) add(field, code, msg string) {
	if fe.Fields == nil {
		fe.Fields = map[string]string{}
	}
	if _, dup := fe.Fields[field]; dup {
		return
	}
	fe.Fields[field] = msg
	if code != "" {
		if fe.Codes == nil {
			fe.Codes = map[string]string{}
		}
		fe.Codes[field] = code
	}
}

// Error lists the fields, sorted.
func (fe *FieldErrors) Error() string {
	var parts []string
	for f, m := range fe.Fields {
		parts = append(parts, f+": "+m)
	}
	slices.Sort(parts)
	return "invalid incident: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true for field errors.
func (fe *FieldErrors) Is(target error) bool { return target == ErrInvalid }

func (fe *FieldErrors) empty() bool { return len(fe.Fields) == 0 }

// Limits on text, so one request cannot fill the store.
const (
	MaxDescription = 8000
	MaxShort       = 200 // names, contacts, remark numbers, outcomes' first lines
	MaxComment     = 4000
)

// PlausibleName reports whether s looks like a person's name someone could
// read back: letters (any script), spaces, hyphens, apostrophes and dots;
// at least two letters; not one letter repeated; no digits. An illegible
// name copied from a form ("??", "xx", "1234") fails.
func PlausibleName(s string) bool {
	s = strings.TrimSpace(s)
	letters := 0
	var first rune
	same := true
	for _, r := range s {
		switch {
		case unicode.IsLetter(r):
			if letters == 0 {
				first = unicode.ToLower(r)
			} else if unicode.ToLower(r) != first {
				same = false
			}
			letters++
		case r == ' ' || r == '-' || r == '\'' || r == '.' || r == '’':
		default:
			return false
		}
	}
	return letters >= 2 && !same
}

// cleanText refuses control characters other than newlines and tabs and
// invalid UTF-8, and bounds the length. Markup is kept as text: pages
// escape it when they show it.
func cleanText(fe *FieldErrors, field, s string, max int) string {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		fe.add(field, "", "not valid UTF-8")
		return ""
	}
	if utf8.RuneCountInString(s) > max {
		fe.add(field, "", fmt.Sprintf("longer than %d characters", max))
		return ""
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r' {
			fe.add(field, "", "contains control characters")
			return ""
		}
	}
	return s
}
