// Package survey is the domain of Semko's NPS surveys: contacts that earn
// an invitation, invitations, answers on the 0-10 scale with their reasons,
// and the follow-up that closes the loop with a detractor. It holds the
// types, the rules that need no I/O (who is a detractor, how an address is
// normalised, how a link is signed) and the Store interface; the SQLite
// store, the engine that sends and records, the public pages and the API
// live in the sub-packages. It imports only the standard library.
package survey

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors the store and the engine return; callers match them with
// errors.Is.
var (
	ErrNotFound     = errors.New("not found")
	ErrRecent       = errors.New("invited recently")     // the once-per-period rule
	ErrUnsubscribed = errors.New("address unsubscribed") // for good
	ErrReplayed     = errors.New("already answered")     // a second answer for one invitation or device
	ErrClosed       = errors.New("follow-up already closed")
	ErrInvalid      = errors.New("invalid survey input")
)

// Channel is how an answer came in; it is the vote point's channel tag.
type Channel string

// The channels.
const (
	ChannelEmail Channel = "email"
	ChannelQR    Channel = "qr"
	ChannelSMS   Channel = "sms"
)

// Languages the invitations and pages speak.
var Languages = []string{"bg", "ru", "en"}

// Lang returns lang if it is one of Languages, else def.
func Lang(lang, def string) string {
	lang = strings.ToLower(strings.TrimSpace(lang))
	if slices.Contains(Languages, lang) {
		return lang
	}
	return def
}

// Reason categories: the drivers of a score. Configurable per deployment;
// these are the reference practice's own (the information received, the
// materials, the speed, the efficiency of the process, other).
var DefaultReasons = []string{"information", "materials", "speed", "process", "other"}

// Limits on what a customer may write.
const (
	MaxComment = 1000 // characters
	MaxReasons = 8
)

// Category is an NPS answer's class.
type Category string

const (
	Promoter  Category = "promoter"  // 9-10
	Passive   Category = "passive"   // 7-8
	Detractor Category = "detractor" // 0-6
)

// CategoryOf classes a 0-10 score.
func CategoryOf(score int) Category {
	switch {
	case score >= 9:
		return Promoter
	case score >= 7:
		return Passive
	}
	return Detractor
}

// ValidScore reports whether score is on the 0-10 scale.
func ValidScore(score int) bool { return score >= 0 && score <= 10 }

// Contact is one moment a customer dealt with an organisation (a purchase,
// an after-sales service, a contract change, an enquiry) that may earn an
// invitation. Email or Phone is the address; it is used to send and then
// forgotten (see the README's "What is kept, and for how long").
type Contact struct {
	Org, Site, Counter, Device string
	Operator, Service          string
	Email, Phone               string
	Lang                       string
	// Consent: the customer agreed beforehand to be called back; the page
	// asks again, and either is enough.
	Time time.Time
}

// Invitation is one sent survey. It keeps no address.
type Invitation struct {
	ID                         string // random, 32 hex digits
	Org, Site, Counter, Device string
	Operator, Service          string
	Channel                    Channel
	Lang                       string
	Created, Expires           time.Time
}

// Answer is one customer's 0-10 answer with its reasons. ID is unique per
// invitation (the invitation's id) or per scanned QR token ("qr-"+nonce),
// so the second click, the reload and the second tab find the first
// answer instead of making another.
type Answer struct {
	ID         string
	Seq        int64 // assigned by the store, > 0: the vote point's seq
	Invitation string
	Org, Site  string
	Counter    string
	Device     string
	Operator   string
	Service    string
	Channel    Channel
	Lang       string
	Score      int
	Time       time.Time
	// Voter is the keyed hash of a QR scanner's device cookie: one answer
	// per counter and device within the store's window.
	Voter string

	Reasons   []string
	Comment   string
	ReasonsAt time.Time // zero until the reason page was sent

	VoteSpooled   bool // the vote point is in the spool
	DetailSpooled bool // the reason and comment points are
}

// Validate checks what the store is given.
func (a Answer) Validate() error {
	switch {
	case a.ID == "" || len(a.ID) > 80:
		return fmt.Errorf("%w: answer id", ErrInvalid)
	case !ValidScore(a.Score):
		return fmt.Errorf("%w: score %d", ErrInvalid, a.Score)
	case a.Org == "" || a.Counter == "":
		return fmt.Errorf("%w: answer without org or counter", ErrInvalid)
	case a.Time.IsZero():
		return fmt.Errorf("%w: answer without time", ErrInvalid)
	}
	return nil
}

// FollowUpState is where a follow-up is.
type FollowUpState string

const (
	FollowUpOpen   FollowUpState = "open"
	FollowUpClosed FollowUpState = "closed"
)

// FollowUp is the loop closed with one detractor (or passive): the
// responsible person of the counter's site calls back and records what was
// done, before Due.
type FollowUp struct {
	ID       int64    `json:"id"`
	Answer   string   `json:"answer"`
	Org      string   `json:"org"`
	Site     string   `json:"site"`
	Counter  string   `json:"counter"`
	Operator string   `json:"operator,omitempty"`
	Service  string   `json:"service,omitempty"`
	Channel  Channel  `json:"channel"`
	Score    int      `json:"score"`
	Reasons  []string `json:"reasons"`
	Comment  string   `json:"comment"`
	// Contact is the customer's address, only when they agreed to be
	// contacted; erased after the retention period once closed.
	Contact     string        `json:"contact,omitempty"`
	Lang        string        `json:"lang"`
	Responsible string        `json:"responsible"` // the person's name, as the registry had it
	Opened      time.Time     `json:"opened"`
	Due         time.Time     `json:"due"`
	State       FollowUpState `json:"state"`
	Closed      time.Time     `json:"closed,omitzero"`
	ClosedBy    string        `json:"closed_by,omitempty"`
	Outcome     string        `json:"outcome,omitempty"`
	Notified    time.Time     `json:"notified,omitzero"`  // the customer was told by e-mail
	Escalated   time.Time     `json:"escalated,omitzero"` // the overdue alert was raised
}

// InTime reports whether a closed follow-up was closed by its deadline.
func (f FollowUp) InTime() bool {
	return f.State == FollowUpClosed && !f.Closed.After(f.Due)
}

// FollowUpFilter selects follow-ups; empty fields match all.
type FollowUpFilter struct {
	State FollowUpState
	Org   string
	Site  string
	// Overdue selects open ones due before it and not yet escalated.
	Overdue time.Time
	Limit   int // default 500
}

// Store keeps survey state. Every implementation passes storetest.Run.
type Store interface {
	// ReserveSend records an invitation to addrHash in org at at, unless
	// the address was invited there after since (ErrRecent) or
	// unsubscribed (ErrUnsubscribed). Atomic: two contacts at once yield
	// one invitation.
	ReserveSend(ctx context.Context, org, addrHash string, at, since time.Time) error
	// ReleaseSend undoes the reservation made at at (the mail could not
	// be sent), so the next contact may try again.
	ReleaseSend(ctx context.Context, org, addrHash string, at time.Time) error
	// Unsubscribe records addrHash as never to be invited again.
	Unsubscribe(ctx context.Context, addrHash string, at time.Time) error

	SaveInvitation(ctx context.Context, inv Invitation) error
	Invitation(ctx context.Context, id string) (Invitation, error)

	// RecordAnswer stores a unless an answer with its ID exists, returning
	// the stored answer and whether it is new. A non-empty Voter that
	// answered at the same counter after voterSince gives ErrReplayed.
	// When a is new and f is not nil, f is stored in the same transaction
	// (f.Answer is set to a.ID) and its id assigned.
	RecordAnswer(ctx context.Context, a Answer, voterSince time.Time, f *FollowUp) (Answer, bool, error)
	Answer(ctx context.Context, id string) (Answer, error)
	// SetReasons stores the reasons and comment once: a second call
	// returns the stored answer and false. An open follow-up of the
	// answer takes them too, and contact when not empty.
	SetReasons(ctx context.Context, id string, reasons []string, comment, contact string, at time.Time) (Answer, bool, error)
	// MarkSpooled notes that the answer's vote (and, with detail, its
	// reason points) reached the spool.
	MarkSpooled(ctx context.Context, id string, vote, detail bool) error
	// Unspooled lists answers whose vote, or whose sent reasons, have
	// not reached the spool.
	Unspooled(ctx context.Context, limit int) ([]Answer, error)

	FollowUps(ctx context.Context, f FollowUpFilter) ([]FollowUp, error)
	FollowUp(ctx context.Context, id int64) (FollowUp, error)
	// CloseFollowUp records the outcome; ErrClosed if it was closed.
	CloseFollowUp(ctx context.Context, id int64, by, outcome string, at time.Time) (FollowUp, error)
	MarkNotified(ctx context.Context, id int64, at time.Time) error
	MarkEscalated(ctx context.Context, id int64, at time.Time) error

	// Forget deletes send records older than sentBefore (the rule no
	// longer needs them) and erases the contact of follow-ups closed
	// before closedBefore. It reports how many rows changed.
	Forget(ctx context.Context, sentBefore, closedBefore time.Time) (int, error)
	Close() error
}

// CleanComment checks a comment: at most MaxComment characters, valid
// UTF-8, no markup. Markup is refused rather than escaped, because a
// comment with a script in it is an attack, not an opinion, and storing
// it would hand it to every console and export that shows comments.
func CleanComment(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: comment is not UTF-8", ErrInvalid)
	}
	if utf8.RuneCountInString(s) > MaxComment {
		return "", fmt.Errorf("%w: comment longer than %d characters", ErrInvalid, MaxComment)
	}
	low := strings.ToLower(s)
	for _, bad := range []string{"<script", "</", "javascript:", "<iframe", "<img", "<svg", "onerror=", "onload="} {
		if strings.Contains(low, bad) {
			return "", fmt.Errorf("%w: comment contains markup", ErrMarkup)
		}
	}
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' {
			return "", fmt.Errorf("%w: comment contains control characters", ErrInvalid)
		}
	}
	return s, nil
}

// ErrMarkup marks a comment refused for carrying markup or script.
var ErrMarkup = fmt.Errorf("%w: markup", ErrInvalid)

// CleanReasons keeps the known categories of allowed, in their order,
// once each.
func CleanReasons(given, allowed []string) ([]string, error) {
	if len(given) > MaxReasons*2 {
		return nil, fmt.Errorf("%w: too many reasons", ErrInvalid)
	}
	var out []string
	for _, r := range allowed {
		if slices.Contains(given, r) {
			out = append(out, r)
		}
	}
	for _, g := range given {
		if !slices.Contains(allowed, g) {
			return nil, fmt.Errorf("%w: unknown reason %.40q", ErrInvalid, g)
		}
	}
	return out, nil
}
