// Package engine runs the NPS survey: it turns a contact into an
// invitation (e-mail or SMS) under the once-per-period rule, records each
// answer exactly once, hands it to the intake as a vote point, opens a
// follow-up for a detractor with a deadline in the site's working hours,
// escalates the follow-ups that miss it, and forgets personal data on
// time. The public pages (survey/web) and the API (survey/surveyapi) call
// it; it is a backend Part for its periodic work.
package engine

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/calendar"
	"github.com/semko/semko/backend/alert/notify/email"
	"github.com/semko/semko/backend/survey"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/protocol"
)

// KindFollowUpOverdue is the alert raised when a follow-up misses its
// deadline; it is resolved once no overdue follow-up of the counter is
// open.
const KindFollowUpOverdue alert.Kind = "nps_followup_overdue"

// VoteAccepter is the intake (ingest.Ingest.Accept): the answer's vote
// goes the way a keypad's does, de-duplicated on (device, seq, ts).
type VoteAccepter interface {
	Accept(ctx context.Context, t protocol.Topic, payload []byte, received time.Time) error
}

// Appender is the durable spool, for the survey's own points.
type Appender interface {
	Append(ctx context.Context, recs ...[]byte) error
}

// Mailer sends one e-mail (email.Sender).
type Mailer interface {
	Send(ctx context.Context, m email.Message) error
}

// SMSSender sends one text message (survey/sms.Webhook).
type SMSSender interface {
	SendSMS(ctx context.Context, to, text string) error
}

// Errors for what the engine cannot do.
var (
	ErrNoChannel  = errors.New("no channel for this contact")
	ErrNoContact  = errors.New("customer gave no consent to be contacted")
	ErrUnknown    = fmt.Errorf("%w: unknown counter", survey.ErrInvalid)
	ErrWrongToken = fmt.Errorf("%w: wrong kind of link", survey.ErrTampered)
	ErrNoScore    = fmt.Errorf("%w: score out of range", survey.ErrInvalid)
)

// Options configures New. Store, Signer, Registry, Spool and BaseURL are
// required.
type Options struct {
	Store    survey.Store
	Signer   *survey.Signer
	Registry func() *registry.Registry
	Votes    VoteAccepter // nil: votes go to Spool directly
	Spool    Appender
	Mailer   Mailer       // nil: no e-mail invitations
	SMS      SMSSender    // nil: no SMS invitations
	Alerts   alert.Raiser // nil: overdue follow-ups are only counted
	// Leader, when set, lets Run do its periodic work only while it
	// answers true: replicas of a cluster sharing one store would each
	// escalate the same overdue follow-up otherwise.
	Leader func() bool
	// Calendar is a site's business calendar (calendar.Sites.Of); nil
	// counts deadlines in plain hours.
	Calendar func(site string) *calendar.Calendar
	// BaseURL is where the survey pages answer, as customers reach them
	// ("https://survey.example.org"). BaseURLFunc, when BaseURL is empty,
	// gives it once the listener is up (a port picked at start).
	BaseURL     string
	BaseURLFunc func() string
	// Period is the least time between two invitations to one address in
	// one organisation; PeriodByOrg overrides it. Default 183 days.
	Period      time.Duration
	PeriodByOrg map[string]time.Duration
	// LinkTTL is how long an invitation may be answered; default 14 days.
	LinkTTL time.Duration
	// ScanTTL is how long one QR scan may be answered; default 30 min.
	ScanTTL time.Duration
	// Serving, when set, gives the operator and service of a device's
	// activation in force at a time: a QR answer is tied to those of the
	// moment of the scan. Without it (or before any activation) the
	// counter's defaults stand.
	Serving func(device string, at time.Time) (operator, service string, ok bool)
	// VoterWindow: one answer per QR-scanning device and counter within
	// it; default 12 h.
	VoterWindow time.Duration
	// Deadline is the follow-up's time in working hours; default 3 h.
	Deadline time.Duration
	// FollowPassives opens follow-ups for 7-8 too.
	FollowPassives bool
	// Retention is how long a closed follow-up keeps the customer's
	// address; default 30 days.
	Retention time.Duration
	// Reasons are the reason categories; default survey.DefaultReasons.
	Reasons    []string
	CheckEvery time.Duration // default 1 min
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Engine is the survey's logic. Safe for concurrent use.
type Engine struct {
	o   Options
	log *slog.Logger
	m   *metrics
}

// New checks opts.
func New(o Options) (*Engine, error) {
	if o.Store == nil || o.Signer == nil || o.Registry == nil || o.Spool == nil || (o.BaseURL == "" && o.BaseURLFunc == nil) {
		return nil, errors.New("survey engine: Store, Signer, Registry, Spool and BaseURL are required")
	}
	if o.BaseURL != "" {
		base := strings.TrimRight(o.BaseURL, "/")
		o.BaseURLFunc = func() string { return base }
	}
	o.Period = cmp.Or(o.Period, 183*24*time.Hour)
	o.LinkTTL = cmp.Or(o.LinkTTL, 14*24*time.Hour)
	o.ScanTTL = cmp.Or(o.ScanTTL, 30*time.Minute)
	o.VoterWindow = cmp.Or(o.VoterWindow, 12*time.Hour)
	o.Deadline = cmp.Or(o.Deadline, 3*time.Hour)
	o.Retention = cmp.Or(o.Retention, 30*24*time.Hour)
	o.CheckEvery = cmp.Or(o.CheckEvery, time.Minute)
	if len(o.Reasons) == 0 {
		o.Reasons = survey.DefaultReasons
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	return &Engine{o: o, log: o.Logger, m: m}, nil
}

// Reasons are the reason categories the pages offer.
func (e *Engine) Reasons() []string { return e.o.Reasons }

// Signer signs the pages' own tokens.
func (e *Engine) Signer() *survey.Signer { return e.o.Signer }

// Now is the engine's clock.
func (e *Engine) Now() time.Time { return e.o.Now() }

// where resolves a contact's counter (by id, or by the keypad's device).
func (e *Engine) where(counter, device string) (registry.Counter, error) {
	reg := e.o.Registry()
	if counter == "" && device != "" {
		d, ok := reg.Device(device)
		if !ok || d.Counter == "" {
			return registry.Counter{}, fmt.Errorf("%w: device %.40q", ErrUnknown, device)
		}
		counter = d.Counter
	}
	c, ok := reg.Counter(counter)
	if !ok {
		return c, fmt.Errorf("%w: %.40q", ErrUnknown, counter)
	}
	return c, nil
}

func (e *Engine) orgName(org string) string {
	if o, ok := e.o.Registry().Organisation(org); ok && o.Name != "" {
		return o.Name
	}
	return org
}

// Invite sends the invitation a contact earns, in the contact's language:
// by e-mail when it has an address, else by SMS. It returns
// survey.ErrRecent or survey.ErrUnsubscribed when the rules say no. The
// address is used for sending and then dropped: the store keeps its keyed
// hash, the links a sealed copy.
func (e *Engine) Invite(ctx context.Context, c survey.Contact) (survey.Invitation, error) {
	ctr, err := e.where(c.Counter, c.Device)
	if err != nil {
		return survey.Invitation{}, err
	}
	var ch survey.Channel
	var addr string
	switch {
	case c.Email != "" && e.o.Mailer != nil:
		ch = survey.ChannelEmail
		addr, err = survey.NormaliseEmail(c.Email)
	case c.Phone != "" && e.o.SMS != nil:
		ch = survey.ChannelSMS
		addr, err = survey.NormalisePhone(c.Phone)
	default:
		return survey.Invitation{}, ErrNoChannel
	}
	if err != nil {
		return survey.Invitation{}, err
	}
	now := e.o.Now()
	reg := e.o.Registry()
	if c.Operator != "" {
		if op, ok := reg.Operator(c.Operator); !ok || op.Org != ctr.Org {
			c.Operator = ""
		}
	}
	if c.Service != "" {
		if _, ok := reg.Service(c.Service); !ok {
			c.Service = ""
		}
	}
	hash := e.o.Signer.AddressHash(ch, addr)
	period := e.o.Period
	if p, ok := e.o.PeriodByOrg[ctr.Org]; ok && p > 0 {
		period = p
	}
	if err := e.o.Store.ReserveSend(ctx, ctr.Org, hash, now, now.Add(-period)); err != nil {
		switch {
		case errors.Is(err, survey.ErrRecent):
			e.m.invitations.WithLabelValues("recent").Inc()
		case errors.Is(err, survey.ErrUnsubscribed):
			e.m.invitations.WithLabelValues("unsubscribed").Inc()
		}
		return survey.Invitation{}, err
	}
	inv := survey.Invitation{
		ID: survey.NewID(), Org: ctr.Org, Site: ctr.Site, Counter: ctr.ID, Device: ctr.Device,
		Operator: cmp.Or(c.Operator, ctr.Operator), Service: cmp.Or(c.Service, ctr.Service),
		Channel: ch, Lang: survey.Lang(c.Lang, "bg"), Created: now, Expires: now.Add(e.o.LinkTTL),
	}
	release := func(err error) (survey.Invitation, error) {
		if rerr := e.o.Store.ReleaseSend(context.WithoutCancel(ctx), ctr.Org, hash, now); rerr != nil {
			e.log.Warn("survey: release send", "err", rerr)
		}
		e.m.invitations.WithLabelValues("failed").Inc()
		return survey.Invitation{}, err
	}
	if err := e.o.Store.SaveInvitation(ctx, inv); err != nil {
		return release(err)
	}
	sealed := e.o.Signer.Seal(addr)
	switch ch {
	case survey.ChannelEmail:
		err = e.o.Mailer.Send(ctx, e.invitationMail(inv, addr, hash, sealed))
	case survey.ChannelSMS:
		err = e.o.SMS.SendSMS(ctx, addr, e.invitationSMS(inv, sealed))
	}
	if err != nil {
		return release(fmt.Errorf("send invitation: %w", err))
	}
	e.m.invitations.WithLabelValues("sent").Inc()
	if err := e.o.Spool.Append(ctx, invitationLine(inv)); err != nil {
		// The invitation went out; a missing point only lowers the
		// response rate's denominator.
		e.log.Warn("survey: spool invitation point", "err", err)
	}
	return inv, nil
}

// AnswerURL is an invitation's link for one score (NoScore: the page
// with the buttons).
func (e *Engine) AnswerURL(inv survey.Invitation, score int, sealed []byte) string {
	tok := e.o.Signer.Encode(survey.Token{Kind: survey.TokenAnswer, Ref: inv.ID, Score: score, Expires: inv.Expires, Extra: sealed})
	return e.o.BaseURLFunc() + "/s/" + tok
}

// UnsubscribeURL opens the page that ends invitations to an address.
func (e *Engine) UnsubscribeURL(hash string, lang string) string {
	tok := e.o.Signer.Encode(survey.Token{Kind: survey.TokenUnsubscribe, Ref: hash, Score: survey.NoScore,
		Expires: e.o.Now().Add(10 * 366 * 24 * time.Hour)})
	return e.o.BaseURLFunc() + "/u/" + tok + "?lang=" + lang
}

func (e *Engine) invitationMail(inv survey.Invitation, addr, hash string, sealed []byte) email.Message {
	t := textsFor(inv.Lang)
	org := e.orgName(inv.Org)
	var txt, h strings.Builder
	fmt.Fprintf(&txt, "%s\n\n%s\n\n", t.Intro, fmt.Sprintf(t.Question, org))
	fmt.Fprintf(&h, `<!doctype html><html lang="%s"><body style="font-family:sans-serif;color:#111">`, inv.Lang)
	fmt.Fprintf(&h, `<p>%s</p><p style="font-size:18px"><strong>%s</strong></p><table role="presentation" cellspacing="4"><tr>`,
		html.EscapeString(t.Intro), html.EscapeString(fmt.Sprintf(t.Question, org)))
	for s := 0; s <= 10; s++ {
		u := e.AnswerURL(inv, s, sealed)
		fmt.Fprintf(&txt, "%2d: %s\n", s, u)
		fmt.Fprintf(&h, `<td><a href="%s" style="display:inline-block;min-width:32px;padding:10px 4px;text-align:center;background:#0b5394;color:#fff;text-decoration:none;border-radius:4px;font-weight:bold" aria-label="%d">%d</a></td>`,
			html.EscapeString(u), s, s)
	}
	unsub := e.UnsubscribeURL(hash, inv.Lang)
	fmt.Fprintf(&txt, "\n%s, %s\n\n%s\n%s: %s\n", t.Low, t.High, t.Footer, t.Unsubscribe, unsub)
	fmt.Fprintf(&h, `</tr></table><p style="color:#444">%s · %s</p><p style="color:#444">%s</p><p><a href="%s" style="color:#0b5394">%s</a></p></body></html>`,
		html.EscapeString(t.Low), html.EscapeString(t.High), html.EscapeString(t.Footer), html.EscapeString(unsub), html.EscapeString(t.Unsubscribe))
	return email.Message{To: []string{addr}, Subject: fmt.Sprintf(t.Subject, org), Text: txt.String(), HTML: h.String(), MessageID: "nps-" + inv.ID + "@semko"}
}

func (e *Engine) invitationSMS(inv survey.Invitation, sealed []byte) string {
	t := textsFor(inv.Lang)
	return fmt.Sprintf(t.Question, e.orgName(inv.Org)) + " " + e.AnswerURL(inv, survey.NoScore, sealed)
}

// AnswerLink records the score of an invitation's link. A second click
// (any score), a reload or another tab returns the first answer with
// isNew false.
func (e *Engine) AnswerLink(ctx context.Context, tok survey.Token, score int) (a survey.Answer, isNew bool, err error) {
	if tok.Kind != survey.TokenAnswer {
		return a, false, ErrWrongToken
	}
	if !survey.ValidScore(score) {
		return a, false, ErrNoScore
	}
	inv, err := e.o.Store.Invitation(ctx, tok.Ref)
	if err != nil {
		return a, false, err
	}
	a = survey.Answer{ID: inv.ID, Invitation: inv.ID, Org: inv.Org, Site: inv.Site, Counter: inv.Counter, Device: inv.Device,
		Operator: inv.Operator, Service: inv.Service, Channel: inv.Channel, Lang: inv.Lang, Score: score, Time: e.o.Now()}
	return e.record(ctx, a, time.Time{})
}

// CounterURL is the address a counter's printed QR code holds. It does
// not expire: the paper stays on the desk.
func (e *Engine) CounterURL(counter string) string {
	tok := e.o.Signer.Encode(survey.Token{Kind: survey.TokenCounter, Ref: counter, Score: survey.NoScore,
		Expires: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)})
	return e.o.BaseURLFunc() + "/q/" + tok
}

// Scan turns a counter's code into a fresh, short-lived token for one
// answer.
func (e *Engine) Scan(tok survey.Token) (string, registry.Counter, error) {
	if tok.Kind != survey.TokenCounter {
		return "", registry.Counter{}, ErrWrongToken
	}
	c, err := e.where(tok.Ref, "")
	if err != nil {
		return "", c, err
	}
	nonce, _ := hex.DecodeString(survey.NewID()[:24])
	scan := e.o.Signer.Encode(survey.Token{Kind: survey.TokenScan, Ref: c.ID, Score: survey.NoScore,
		Expires: e.o.Now().Add(e.o.ScanTTL), Extra: nonce})
	return scan, c, nil
}

// AnswerScan records a QR answer: once per scan token, and once per
// scanning device (voter, the page's cookie) and counter within
// VoterWindow.
func (e *Engine) AnswerScan(ctx context.Context, tok survey.Token, score int, voter string) (survey.Answer, bool, error) {
	if tok.Kind != survey.TokenScan || len(tok.Extra) == 0 {
		return survey.Answer{}, false, ErrWrongToken
	}
	if !survey.ValidScore(score) {
		return survey.Answer{}, false, ErrNoScore
	}
	c, err := e.where(tok.Ref, "")
	if err != nil {
		return survey.Answer{}, false, err
	}
	now := e.o.Now()
	a := survey.Answer{ID: AnswerID(tok), Org: c.Org, Site: c.Site, Counter: c.ID, Device: c.Device,
		Operator: c.Operator, Service: c.Service, Channel: survey.ChannelQR, Score: score, Time: now}
	if e.o.Serving != nil && c.Device != "" {
		// The scan token was made ScanTTL before it expires: the service
		// in force then is the one the customer answers about.
		if op, svc, ok := e.o.Serving(c.Device, tok.Expires.Add(-e.o.ScanTTL)); ok {
			a.Operator, a.Service = cmp.Or(op, a.Operator), cmp.Or(svc, a.Service)
		}
	}
	if voter != "" {
		a.Voter = e.o.Signer.AddressHash("voter", voter)
	}
	return e.record(ctx, a, now.Add(-e.o.VoterWindow))
}

// AnswerID is the answer a token stands for.
func AnswerID(tok survey.Token) string {
	if tok.Kind == survey.TokenScan {
		return "qr-" + hex.EncodeToString(tok.Extra)
	}
	return tok.Ref
}

// Answer returns a stored answer.
func (e *Engine) Answer(ctx context.Context, id string) (survey.Answer, error) {
	return e.o.Store.Answer(ctx, id)
}

// record stores a (and its follow-up) once and spools its vote.
func (e *Engine) record(ctx context.Context, a survey.Answer, voterSince time.Time) (survey.Answer, bool, error) {
	var f *survey.FollowUp
	cat := survey.CategoryOf(a.Score)
	if cat == survey.Detractor || (cat == survey.Passive && e.o.FollowPassives) {
		f = &survey.FollowUp{Org: a.Org, Site: a.Site, Counter: a.Counter, Operator: a.Operator, Service: a.Service,
			Channel: a.Channel, Score: a.Score, Lang: a.Lang, Opened: a.Time, Due: e.due(a.Site, a.Time)}
		if c, ok := e.o.Registry().Counter(a.Counter); ok {
			f.Responsible = cmp.Or(c.Responsible.Name, c.Responsible.Email)
		}
	}
	stored, isNew, err := e.o.Store.RecordAnswer(ctx, a, voterSince, f)
	if err != nil {
		return stored, false, err
	}
	if !isNew {
		e.m.repeats.Inc()
		return stored, false, nil
	}
	e.m.answers.WithLabelValues(string(a.Channel), string(cat)).Inc()
	e.spoolVote(ctx, stored)
	if f != nil {
		e.m.followups.WithLabelValues("opened").Inc()
		e.spoolFollowUp(ctx, *f)
	}
	return stored, true, nil
}

// due is the follow-up deadline: Deadline working hours of the site's
// calendar after t.
func (e *Engine) due(site string, t time.Time) time.Time {
	if e.o.Calendar != nil {
		if cal := e.o.Calendar(site); cal != nil {
			if d, err := cal.Add(t, e.o.Deadline); err == nil {
				return d
			}
		}
	}
	return t.Add(e.o.Deadline)
}

// vote is the answer as the keypad's vote payload: its seq is the
// store's, its ts the answer's, so a resend is the same vote for ingest's
// de-duplication and overwrites itself in InfluxDB.
func vote(a survey.Answer) protocol.Vote {
	return protocol.Vote{V: 1, Device: a.Device, Seq: uint64(a.Seq), Time: a.Time, Score: a.Score, Scale: protocol.ScaleNPS11,
		Channel: string(a.Channel), Valid: true, Activation: "nps-" + strconv.FormatInt(a.Seq, 10), Operator: a.Operator, Service: a.Service}
}

// spoolVote hands the vote to the intake and notes it; on failure the
// periodic check tries again.
func (e *Engine) spoolVote(ctx context.Context, a survey.Answer) {
	if err := e.sendVote(ctx, a); err != nil {
		e.log.Warn("survey: vote not spooled yet", "answer", a.ID, "err", err)
		return
	}
	if err := e.o.Store.MarkSpooled(ctx, a.ID, true, false); err != nil {
		e.log.Warn("survey: mark spooled", "answer", a.ID, "err", err)
	}
}

func (e *Engine) sendVote(ctx context.Context, a survey.Answer) error {
	v := vote(a)
	if a.Device == "" || e.o.Votes == nil {
		// A counter without a keypad has no device to speak for it: the
		// point goes to the spool as the intake would write it.
		return e.o.Spool.Append(ctx, voteLine(v, a))
	}
	payload, err := protocol.Encode(v)
	if err != nil {
		return fmt.Errorf("encode vote: %w", err)
	}
	return e.o.Votes.Accept(ctx, protocol.Topic{Device: a.Device, Kind: protocol.KindVote}, payload, a.Time)
}

func voteLine(v protocol.Vote, a survey.Answer) []byte {
	cat := survey.CategoryOf(v.Score)
	return newLine("vote").tag("channel", v.Channel).tag("counter", a.Counter).tag("operator", a.Operator).tag("org", a.Org).
		tag("scale", string(v.Scale)).tag("service", a.Service).tag("site", a.Site).
		int("score", int64(v.Score)).int("satisfied", b2i(cat == survey.Promoter)).int("negative", b2i(cat == survey.Detractor)).
		int("seq", int64(v.Seq)).str("valid", "true").str("activation", v.Activation).end(v.Time)
}

func (e *Engine) spoolFollowUp(ctx context.Context, f survey.FollowUp) {
	if err := e.o.Spool.Append(ctx, followUpLine(f)); err != nil {
		e.log.Warn("survey: spool follow-up point", "id", f.ID, "err", err)
	}
}

// SetReasons stores the reason page once and spools its points. consent
// lets the follow-up keep the address the link carries.
func (e *Engine) SetReasons(ctx context.Context, tok survey.Token, reasons []string, comment string, consent bool) (survey.Answer, bool, error) {
	reasons, err := survey.CleanReasons(reasons, e.o.Reasons)
	if err != nil {
		return survey.Answer{}, false, err
	}
	comment, err = survey.CleanComment(comment)
	if err != nil {
		return survey.Answer{}, false, err
	}
	var contact string
	if consent && tok.Kind == survey.TokenAnswer && len(tok.Extra) > 0 {
		if contact, err = e.o.Signer.Open(tok.Extra); err != nil {
			return survey.Answer{}, false, err
		}
	}
	a, isNew, err := e.o.Store.SetReasons(ctx, AnswerID(tok), reasons, comment, contact, e.o.Now())
	if err != nil || !isNew {
		return a, isNew, err
	}
	e.spoolDetail(ctx, a)
	return a, true, nil
}

func (e *Engine) spoolDetail(ctx context.Context, a survey.Answer) {
	if lines := detailLines(a); len(lines) > 0 {
		if err := e.o.Spool.Append(ctx, lines...); err != nil {
			e.log.Warn("survey: reasons not spooled yet", "answer", a.ID, "err", err)
			return
		}
	}
	if err := e.o.Store.MarkSpooled(ctx, a.ID, false, true); err != nil {
		e.log.Warn("survey: mark spooled", "answer", a.ID, "err", err)
	}
}

// Unsubscribe ends invitations to the address of tok, for good.
func (e *Engine) Unsubscribe(ctx context.Context, tok survey.Token) error {
	if tok.Kind != survey.TokenUnsubscribe {
		return ErrWrongToken
	}
	if err := e.o.Store.Unsubscribe(ctx, tok.Ref, e.o.Now()); err != nil {
		return err
	}
	e.m.unsubscribes.Inc()
	return nil
}

// FollowUps lists follow-ups.
func (e *Engine) FollowUps(ctx context.Context, f survey.FollowUpFilter) ([]survey.FollowUp, error) {
	return e.o.Store.FollowUps(ctx, f)
}

// FollowUp returns one.
func (e *Engine) FollowUp(ctx context.Context, id int64) (survey.FollowUp, error) {
	return e.o.Store.FollowUp(ctx, id)
}

// Close records what was done and closes the follow-up; the overdue
// alert of its counter is resolved when no other overdue one is open.
func (e *Engine) Close(ctx context.Context, id int64, by, outcome string) (survey.FollowUp, error) {
	outcome = strings.TrimSpace(outcome)
	if outcome == "" || len([]rune(outcome)) > 2000 {
		return survey.FollowUp{}, fmt.Errorf("%w: outcome must say what was done, at most 2000 characters", survey.ErrInvalid)
	}
	f, err := e.o.Store.CloseFollowUp(ctx, id, by, outcome, e.o.Now())
	if err != nil {
		return f, err
	}
	e.m.followups.WithLabelValues(map[bool]string{true: "closed_in_time", false: "closed_late"}[f.InTime()]).Inc()
	e.spoolFollowUp(ctx, f)
	if !f.Escalated.IsZero() && e.o.Alerts != nil {
		open, err := e.o.Store.FollowUps(ctx, survey.FollowUpFilter{State: survey.FollowUpOpen, Org: f.Org, Site: f.Site})
		if err == nil && !anyEscalatedAt(open, f.Counter) {
			if err := e.o.Alerts.Resolve(ctx, KindFollowUpOverdue, subject(f), "follow-ups closed"); err != nil {
				e.log.Warn("survey: resolve overdue alert", "err", err)
			}
		}
	}
	return f, nil
}

func anyEscalatedAt(fs []survey.FollowUp, counter string) bool {
	for _, f := range fs {
		if f.Counter == counter && !f.Escalated.IsZero() {
			return true
		}
	}
	return false
}

func subject(f survey.FollowUp) alert.Subject {
	return alert.Subject{Org: f.Org, Site: f.Site, Counter: f.Counter}
}

// NotifyCustomer tells the customer by e-mail what was done, in their
// language; only for a follow-up whose customer agreed to be contacted.
func (e *Engine) NotifyCustomer(ctx context.Context, id int64, text string) (survey.FollowUp, error) {
	f, err := e.o.Store.FollowUp(ctx, id)
	if err != nil {
		return f, err
	}
	text = strings.TrimSpace(text)
	if text == "" {
		text = f.Outcome
	}
	if text == "" || len([]rune(text)) > 4000 {
		return f, fmt.Errorf("%w: the message is empty or longer than 4000 characters", survey.ErrInvalid)
	}
	if f.Contact == "" || !strings.Contains(f.Contact, "@") || e.o.Mailer == nil {
		return f, ErrNoContact
	}
	t := textsFor(f.Lang)
	org := e.orgName(f.Org)
	msg := email.Message{To: []string{f.Contact}, Subject: fmt.Sprintf(t.ReplySubject, org),
		Text: t.ReplyIntro + "\n\n" + text + "\n", MessageID: fmt.Sprintf("nps-reply-%d-%d@semko", f.ID, e.o.Now().Unix())}
	if err := e.o.Mailer.Send(ctx, msg); err != nil {
		return f, fmt.Errorf("notify customer: %w", err)
	}
	now := e.o.Now()
	if err := e.o.Store.MarkNotified(ctx, id, now); err != nil {
		return f, err
	}
	f.Notified = now
	return f, nil
}

// Stats are the follow-ups' figures of a set.
type Stats struct {
	Open         int `json:"open"`
	Closed       int `json:"closed"`
	ClosedInTime int `json:"closed_in_time"`
	Overdue      int `json:"overdue"`
	// InTimeShare is ClosedInTime / Closed (0 when none closed).
	InTimeShare float64 `json:"in_time_share"`
}

// StatsOf counts fs at now.
func StatsOf(fs []survey.FollowUp, now time.Time) Stats {
	var s Stats
	for _, f := range fs {
		switch {
		case f.State == survey.FollowUpClosed:
			s.Closed++
			if f.InTime() {
				s.ClosedInTime++
			}
		default:
			s.Open++
			if now.After(f.Due) {
				s.Overdue++
			}
		}
	}
	if s.Closed > 0 {
		s.InTimeShare = float64(s.ClosedInTime) / float64(s.Closed)
	}
	return s
}

// Run does the periodic work until ctx ends: votes and points that did
// not reach the spool, overdue follow-ups, and forgetting.
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(e.o.CheckEvery)
	defer t.Stop()
	for {
		if e.o.Leader == nil || e.o.Leader() {
			e.Check(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Check runs one round of the periodic work.
func (e *Engine) Check(ctx context.Context) {
	now := e.o.Now()
	if un, err := e.o.Store.Unspooled(ctx, 500); err != nil {
		e.log.Warn("survey: unspooled", "err", err)
	} else {
		for _, a := range un {
			if !a.VoteSpooled {
				e.spoolVote(ctx, a)
			}
			if !a.ReasonsAt.IsZero() && !a.DetailSpooled {
				e.spoolDetail(ctx, a)
			}
		}
	}
	over, err := e.o.Store.FollowUps(ctx, survey.FollowUpFilter{Overdue: now})
	if err != nil {
		e.log.Warn("survey: overdue follow-ups", "err", err)
	}
	for _, f := range over {
		e.escalate(ctx, f, now)
	}
	// Send records older than the longest period are no longer needed.
	longest := e.o.Period
	for _, p := range e.o.PeriodByOrg {
		longest = max(longest, p)
	}
	if n, err := e.o.Store.Forget(ctx, now.Add(-longest), now.Add(-e.o.Retention)); err != nil {
		e.log.Warn("survey: forget", "err", err)
	} else if n > 0 {
		e.log.Info("survey: personal data past retention erased", "rows", n)
	}
}

func (e *Engine) escalate(ctx context.Context, f survey.FollowUp, now time.Time) {
	if e.o.Alerts != nil {
		details := map[string]string{"followup": strconv.FormatInt(f.ID, 10), "score": strconv.Itoa(f.Score), "due": f.Due.UTC().Format(time.RFC3339)}
		// The receiver "responsible" reads the person from the details,
		// as the rating watcher sets them.
		if c, ok := e.o.Registry().Counter(f.Counter); ok && c.Responsible.Email != "" {
			details[alert.DetailResponsibleEmail] = c.Responsible.Email
			details[alert.DetailResponsibleName] = c.Responsible.Name
			details[alert.DetailResponsibleLang] = c.Responsible.Lang
		}
		err := e.o.Alerts.Raise(ctx, alert.Finding{
			Kind: KindFollowUpOverdue, Severity: alert.SeverityWarning, Subject: subject(f), Time: now,
			Message: fmt.Sprintf("NPS follow-up %d (score %d) at counter %s was due %s and is still open", f.ID, f.Score, f.Counter, f.Due.UTC().Format(time.RFC3339)),
			Hint:    "Call the customer back and record what was done in the console's Follow-ups",
			Details: details,
		})
		if err != nil {
			e.log.Warn("survey: raise overdue", "id", f.ID, "err", err)
			return
		}
	}
	if err := e.o.Store.MarkEscalated(ctx, f.ID, now); err != nil {
		e.log.Warn("survey: mark escalated", "id", f.ID, "err", err)
		return
	}
	f.Escalated = now
	e.m.followups.WithLabelValues("overdue").Inc()
	e.spoolFollowUp(ctx, f)
}

// Invitation returns a stored invitation.
func (e *Engine) Invitation(ctx context.Context, id string) (survey.Invitation, error) {
	return e.o.Store.Invitation(ctx, id)
}

// OrgName is the organisation's name for pages and mails.
func (e *Engine) OrgName(org string) string { return e.orgName(org) }

// CounterOrg is the organisation of a counter ("" when unknown).
func (e *Engine) CounterOrg(counter string) string {
	c, _ := e.o.Registry().Counter(counter)
	return c.Org
}
