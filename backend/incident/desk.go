package incident

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/calendar"
	"github.com/semko/semko/backend/intake/influx"
)

// KindOverdue is the alert kind a missed incident deadline raises.
const KindOverdue = alert.KindIncidentOverdue

// ErrForbidden is returned when the principal may see the incident but not
// do what it asked (a viewer closing it).
var ErrForbidden = errors.New("not allowed for this account")

// Appender takes line-protocol records durably; *spool.Spool is one.
type Appender interface {
	Append(ctx context.Context, recs ...[]byte) error
}

// Options configures a Desk.
type Options struct {
	Config Config
	Store  Store
	Files  *Files
	// Calendar is the business calendar of a site (calendar.Sites.Of);
	// default calendar.Always.
	Calendar func(site string) *calendar.Calendar
	// Known reports whether org has site; nil accepts any.
	Known func(org, site string) bool
	// Raiser hears about missed deadlines (the alert manager); nil: none.
	Raiser alert.Raiser
	// Leader, when set, lets Run check deadlines and retention only while
	// it answers true: replicas of a cluster sharing one store would each
	// mark and escalate the same overdue incident otherwise.
	Leader func() bool
	// Spool takes the `incident` points; nil: none written.
	Spool      Appender
	Clock      clockwork.Clock
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Desk runs incidents through their life cycle. Safe for concurrent use:
// changes are serialised, so two people closing the same incident at once
// get one close and one ErrTransition.
type Desk struct {
	cfg   Config
	opts  Options
	clock clockwork.Clock
	log   *slog.Logger
	m     *metrics

	mu       sync.Mutex
	rejected atomic.Int64 // numbers the points of refused requests
}

type metrics struct {
	steps       *prometheus.CounterVec
	interaction *prometheus.CounterVec
	late        *prometheus.CounterVec
	refused     *prometheus.CounterVec
}

// New checks the configuration and returns a Desk.
func New(opts Options) (*Desk, error) {
	cfg, err := opts.Config.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Store == nil || opts.Files == nil {
		return nil, errors.New("incidents: store and files are required")
	}
	if opts.Calendar == nil {
		always := calendar.Always()
		opts.Calendar = func(string) *calendar.Calendar { return always }
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := &metrics{
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "semko_incident_steps_total",
			Help: "Incident life-cycle steps, by action."}, []string{"action"}),
		interaction: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "semko_incident_interaction_errors_total",
			Help: "Interaction errors found on register, pass-on and attach, by department and error."}, []string{"department", "error"}),
		late: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "semko_incident_late_total",
			Help: "Incident deadlines missed (late reactions), by department."}, []string{"department"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "semko_incident_refused_total",
			Help: "Incident requests refused, by reason."}, []string{"reason"}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{m.steps, m.interaction, m.late, m.refused} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("incident metrics: %w", err)
			}
		}
	}
	return &Desk{cfg: cfg, opts: opts, clock: opts.Clock, log: opts.Logger, m: m}, nil
}

// Config is the desk's configuration with defaults filled in.
func (d *Desk) Config() Config { return d.cfg }

// Now is the desk's time (its clock), for pages that say what is
// overdue.
func (d *Desk) Now() time.Time { return d.clock.Now() }

// Files is where attachments are kept.
func (d *Desk) Files() *Files { return d.opts.Files }

// Draft is what registering an incident takes.
type Draft struct {
	Org             string       `json:"org"`
	Site            string       `json:"site"`
	Department      string       `json:"department"`
	Channel         Channel      `json:"channel"`
	Type            Type         `json:"type"`
	CustomerName    string       `json:"customer_name"`
	CustomerContact string       `json:"customer_contact"`
	RemarkNo        string       `json:"remark_no"`
	Description     string       `json:"description"`
	SourceAlert     int64        `json:"source_alert,omitempty"`
	Attachments     []Attachment `json:"-"` // already stored by Files.Put
}

// remarkNeeded: the remark's number comes from the shop's book or the
// document system; an e-mail, a keypad vote or an NPS answer has none.
func remarkNeeded(c Channel, t Type) bool {
	return t != TypeThanks && (c == ChannelInPerson || c == ChannelPhone || c == ChannelWebForm)
}

// mayRegister: everyone who acts (not viewers, not technicians).
func mayRegister(p access.Principal) bool {
	return p.Role == access.Admin || p.Role == access.Manager || p.Role == access.CustomerService || p.Role == access.Integrator
}

// mayHandle: Customer Service, managers, admins, and the responsible
// person it was passed to.
func mayHandle(p access.Principal, in Incident) bool {
	switch p.Role {
	case access.Admin, access.Manager, access.CustomerService:
		return true
	}
	return in.PassedTo != "" && p.Account == in.PassedTo && p.Role != access.Viewer
}

// Register checks d and stores a new incident. Hard problems (an unknown
// type, text too long) and interaction errors (no comment, no remark
// number, an implausible name, a blurred scan) are both returned as
// *FieldErrors and nothing is stored; interaction errors are counted for
// the department all the same, since they slowed someone down.
func (d *Desk) Register(ctx context.Context, p access.Principal, dr Draft) (Incident, error) {
	if !p.Scope.Allows(dr.Org, dr.Site) {
		return Incident{}, ErrNotFound
	}
	if !mayRegister(p) {
		return Incident{}, ErrForbidden
	}
	var fe FieldErrors
	in := Incident{
		Org: strings.TrimSpace(dr.Org), Site: strings.TrimSpace(dr.Site), Channel: dr.Channel, Type: dr.Type,
		RegisteredBy: p.Account, SourceAlert: dr.SourceAlert,
	}
	if in.Org == "" {
		fe.add("org", "", "required")
	}
	if in.Site == "" {
		fe.add("site", "", "required")
	} else if d.opts.Known != nil && !d.opts.Known(in.Org, in.Site) {
		fe.add("site", "", "no such site in this organisation")
	}
	dept, ok := d.cfg.Department(dr.Department)
	if !ok {
		fe.add("department", "", "unknown department")
	}
	in.Department = dept.Name
	if !slices.Contains(Channels, dr.Channel) {
		fe.add("channel", "", "unknown channel")
	}
	if !slices.Contains(d.cfg.AllTypes(), dr.Type) {
		fe.add("type", "", "unknown type")
	}
	in.CustomerName = cleanText(&fe, "customer_name", dr.CustomerName, MaxShort)
	in.CustomerContact = cleanText(&fe, "customer_contact", dr.CustomerContact, MaxShort)
	in.RemarkNo = cleanText(&fe, "remark_no", dr.RemarkNo, MaxShort)
	in.Description = cleanText(&fe, "description", dr.Description, MaxDescription)
	if len(dr.Attachments) > d.cfg.MaxAttachments {
		fe.add("attachments", "", fmt.Sprintf("at most %d files", d.cfg.MaxAttachments))
	}
	// Interaction errors.
	if in.Description == "" && fe.Fields["description"] == "" {
		fe.add("description", ErrCodeComment, "say what happened: a comment is required")
	}
	if in.RemarkNo == "" && remarkNeeded(in.Channel, in.Type) && fe.Fields["remark_no"] == "" {
		fe.add("remark_no", ErrCodeRemark, "the remark's number is missing")
	}
	if in.CustomerName != "" && !PlausibleName(in.CustomerName) {
		fe.add("customer_name", ErrCodeName, "the customer's name cannot be read: write it in letters, as on the form")
	}
	d.checkScans(&fe, dr.Attachments)
	if !fe.empty() {
		d.refuse(ctx, in, &fe)
		return Incident{}, &fe
	}
	now := d.clock.Now()
	in.Attachments = slices.Clone(dr.Attachments)
	in.State, in.CreatedAt, in.UpdatedAt = StateRegistered, now, now
	due, err := d.opts.Calendar(in.Site).Add(now, dept.MaxTime)
	if err != nil {
		return Incident{}, fmt.Errorf("deadline: %w", err)
	}
	in.DueAt = due
	st := Step{Time: now, Action: ActionRegistered, State: StateRegistered, Actor: p.Account, Comment: in.Description}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.opts.Store.Create(ctx, &in, &st); err != nil {
		return Incident{}, fmt.Errorf("register incident: %w", err)
	}
	d.record(ctx, in, st, nil)
	return in, nil
}

// checkScans flags images whose shorter side is below the configured
// minimum: a scan nobody can read.
func (d *Desk) checkScans(fe *FieldErrors, atts []Attachment) {
	if d.cfg.MinScanPixels < 0 {
		return
	}
	for _, a := range atts {
		if a.Width > 0 && min(a.Width, a.Height) < d.cfg.MinScanPixels {
			fe.add("attachments", ErrCodeResolution, fmt.Sprintf("%s is %dx%d pixels: scan it at %d pixels or more on the shorter side",
				a.Name, a.Width, a.Height, d.cfg.MinScanPixels))
			return
		}
	}
}

// refuse counts the interaction errors of a refused request and writes
// them as a `rejected` point, so the dashboard shows which departments
// send incidents Customer Service must send back.
func (d *Desk) refuse(ctx context.Context, in Incident, fe *FieldErrors) {
	errs := map[string]int{}
	for _, code := range fe.Codes {
		errs[code]++
	}
	if len(errs) == 0 {
		d.m.refused.WithLabelValues("invalid").Inc()
		return
	}
	d.m.refused.WithLabelValues("interaction").Inc()
	dept := in.Department
	if dept == "" {
		dept = "unknown"
	}
	for code, n := range errs {
		d.m.interaction.WithLabelValues(dept, code).Add(float64(n))
	}
	d.record(ctx, in, Step{ID: d.rejected.Add(1), Time: d.clock.Now(), State: "rejected"}, errs)
}

func addErrors(into, add map[string]int) map[string]int {
	if into == nil {
		into = map[string]int{}
	}
	for k, v := range add {
		into[k] += v
	}
	return into
}

// change loads an incident in p's scope, lets fn change it, and saves it
// with its step. Out of scope is ErrNotFound.
func (d *Desk) change(ctx context.Context, p access.Principal, id int64, fn func(in *Incident, now time.Time) (Step, error)) (Incident, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	in, err := d.opts.Store.Get(ctx, id)
	if err != nil {
		return Incident{}, err
	}
	if !p.Scope.Allows(in.Org, in.Site) {
		return Incident{}, ErrNotFound
	}
	now := d.clock.Now()
	before := in
	st, err := fn(&in, now)
	if err != nil {
		return Incident{}, err
	}
	st.Time, st.Actor, st.State = now, p.Account, in.State
	in.UpdatedAt = now
	if err := d.opts.Store.Save(ctx, &in, &st); err != nil {
		return Incident{}, fmt.Errorf("save incident %d: %w", id, err)
	}
	d.record(ctx, in, st, nil)
	if before.Overdue && !in.Overdue || before.Open() && !in.Open() {
		d.resolveAlert(ctx, in, string(st.Action))
	}
	return in, nil
}

// PassOn passes a registered incident to the department's responsible
// person. A comment is required, and the type's documents must be
// attached; missing ones are interaction errors, counted and refused.
func (d *Desk) PassOn(ctx context.Context, p access.Principal, id int64, to, comment string) (Incident, error) {
	return d.change(ctx, p, id, func(in *Incident, now time.Time) (Step, error) {
		if !mayHandle(p, *in) && !(p.Role == access.Integrator && in.RegisteredBy == p.Account) {
			return Step{}, ErrForbidden
		}
		if in.State != StateRegistered {
			return Step{}, fmt.Errorf("%w: pass on a %s incident", ErrTransition, in.State)
		}
		dept, _ := d.cfg.Department(in.Department)
		var fe FieldErrors
		comment = cleanText(&fe, "comment", comment, MaxComment)
		to = cleanText(&fe, "to", to, MaxShort)
		if comment == "" && fe.Fields["comment"] == "" {
			fe.add("comment", ErrCodeComment, "add a comment for the responsible person")
		}
		if to == "" && len(dept.Accounts) > 0 {
			to = dept.Accounts[0]
		}
		if to == "" {
			fe.add("to", "", "name the responsible person")
		} else if len(dept.Accounts) > 0 && !slices.Contains(dept.Accounts, to) {
			fe.add("to", "", "not a responsible person of "+dept.Title)
		}
		if need := d.cfg.documents(in.Type); len(in.Attachments) < need {
			fe.add("attachments", ErrCodeDocuments, fmt.Sprintf("%d of %d documents attached", len(in.Attachments), need))
		}
		if !fe.empty() {
			// The refusal is kept on the incident, so its figures count it.
			cp := *in
			d.refuseStored(ctx, &cp, &fe)
			return Step{}, &fe
		}
		in.State, in.PassedTo, in.PassedAt = StatePassed, to, now
		due, err := d.opts.Calendar(in.Site).Add(now, dept.MaxTime)
		if err != nil {
			return Step{}, fmt.Errorf("deadline: %w", err)
		}
		in.DueAt, in.Overdue = due, false
		return Step{Action: ActionPassed, Comment: comment, To: to}, nil
	})
}

// refuseStored counts a refusal of an existing incident and keeps the
// count on it (the caller holds d.mu).
func (d *Desk) refuseStored(ctx context.Context, in *Incident, fe *FieldErrors) {
	d.refuse(ctx, *in, fe)
	errs := map[string]int{}
	for _, code := range fe.Codes {
		errs[code]++
	}
	if len(errs) == 0 {
		return
	}
	in.Errors = addErrors(in.Errors, errs)
	if err := d.opts.Store.Save(ctx, in, nil); err != nil {
		d.log.Warn("incident: interaction errors not kept", "incident", in.ID, "err", err)
	}
}

// Update adds a comment to a passed-on incident: what more was learned.
// The first update moves it to in_progress.
func (d *Desk) Update(ctx context.Context, p access.Principal, id int64, comment string) (Incident, error) {
	return d.change(ctx, p, id, func(in *Incident, now time.Time) (Step, error) {
		if !mayHandle(p, *in) {
			return Step{}, ErrForbidden
		}
		if in.State != StatePassed && in.State != StateInProgress {
			return Step{}, fmt.Errorf("%w: update a %s incident", ErrTransition, in.State)
		}
		var fe FieldErrors
		comment = cleanText(&fe, "comment", comment, MaxComment)
		if comment == "" && fe.empty() {
			fe.add("comment", ErrCodeComment, "each update needs a comment")
		}
		if !fe.empty() {
			return Step{}, &fe
		}
		in.State = StateInProgress
		return Step{Action: ActionUpdated, Comment: comment}, nil
	})
}

// Close ends a passed-on incident with its outcome ("The customer came,
// the goods were exchanged") and whether the customer was called back. A
// close after the deadline names the reason it took long.
func (d *Desk) Close(ctx context.Context, p access.Principal, id int64, outcome string, calledBack bool, delayReason string) (Incident, error) {
	return d.change(ctx, p, id, func(in *Incident, now time.Time) (Step, error) {
		if !mayHandle(p, *in) {
			return Step{}, ErrForbidden
		}
		if in.State != StatePassed && in.State != StateInProgress {
			return Step{}, fmt.Errorf("%w: close a %s incident (pass it on first)", ErrTransition, in.State)
		}
		var fe FieldErrors
		outcome = cleanText(&fe, "outcome", outcome, MaxComment)
		if outcome == "" && fe.empty() {
			fe.add("outcome", "", "say how it ended")
		}
		late := !in.DueAt.IsZero() && now.After(in.DueAt)
		if delayReason != "" && !slices.Contains(d.cfg.DelayReasons, delayReason) {
			fe.add("delay_reason", "", "unknown reason; one of "+strings.Join(d.cfg.DelayReasons, ", "))
		}
		if late && delayReason == "" {
			fe.add("delay_reason", "", "the deadline has passed: say why it took long")
		}
		if !fe.empty() {
			return Step{}, &fe
		}
		in.State, in.ClosedAt, in.Outcome, in.CalledBack, in.Overdue = StateClosed, now, outcome, calledBack, false
		if late {
			in.DelayReason = delayReason
		} else {
			in.DelayReason = ""
		}
		comment := outcome
		if calledBack {
			comment += " (+1 call: the customer was called back)"
		}
		return Step{Action: ActionClosed, Comment: comment}, nil
	})
}

// Reopen returns a closed incident to work, with a new deadline.
func (d *Desk) Reopen(ctx context.Context, p access.Principal, id int64, comment string) (Incident, error) {
	return d.change(ctx, p, id, func(in *Incident, now time.Time) (Step, error) {
		if !mayHandle(p, *in) {
			return Step{}, ErrForbidden
		}
		if in.State != StateClosed {
			return Step{}, fmt.Errorf("%w: reopen a %s incident", ErrTransition, in.State)
		}
		var fe FieldErrors
		comment = cleanText(&fe, "comment", comment, MaxComment)
		if comment == "" && fe.empty() {
			fe.add("comment", "", "say why it is reopened")
		}
		if !fe.empty() {
			return Step{}, &fe
		}
		dept, _ := d.cfg.Department(in.Department)
		due, err := d.opts.Calendar(in.Site).Add(now, dept.MaxTime)
		if err != nil {
			return Step{}, fmt.Errorf("deadline: %w", err)
		}
		in.State, in.DueAt, in.Overdue, in.ClosedAt, in.DelayReason = StateInProgress, due, false, time.Time{}, ""
		in.Reopened++
		return Step{Action: ActionReopened, Comment: comment}, nil
	})
}

// Attach stores a file and adds it to an open incident. A file too large
// or of the wrong type is refused before anything is kept on the
// incident; a scan below the resolution is an interaction error.
func (d *Desk) Attach(ctx context.Context, p access.Principal, id int64, name string, r io.Reader) (Incident, error) {
	if _, err := d.Get(ctx, p, id); err != nil { // scope first: nothing stored for a stranger
		return Incident{}, err
	}
	att, created, err := d.opts.Files.Put(ctx, name, r)
	if err != nil {
		d.m.refused.WithLabelValues("attachment").Inc()
		return Incident{}, err
	}
	in, err := d.change(ctx, p, id, func(in *Incident, now time.Time) (Step, error) {
		if !mayHandle(p, *in) && !(in.RegisteredBy == p.Account && mayRegister(p)) {
			return Step{}, ErrForbidden
		}
		if !in.Open() {
			return Step{}, fmt.Errorf("%w: attach to a closed incident", ErrTransition)
		}
		var fe FieldErrors
		if len(in.Attachments) >= d.cfg.MaxAttachments {
			fe.add("attachments", "", fmt.Sprintf("at most %d files", d.cfg.MaxAttachments))
		}
		d.checkScans(&fe, []Attachment{att})
		if !fe.empty() {
			cp := *in
			d.refuseStored(ctx, &cp, &fe)
			return Step{}, &fe
		}
		in.Attachments = append(in.Attachments, att)
		return Step{Action: ActionAttached, Comment: att.Name}, nil
	})
	if err != nil && created {
		_ = d.opts.Files.Remove(context.WithoutCancel(ctx), att.Hash) // nothing half-saved, even if the caller went away
	}
	return in, err
}

// FromAlert drafts an incident from a negative-vote alert: the keypad's
// organisation and site, the channel keypad_negative, and a description
// from the alert's message and details. The caller may change the draft
// before registering it.
func (d *Desk) FromAlert(a alert.Alert) (Draft, error) {
	if a.Kind != alert.KindNegativeVote && a.Kind != alert.KindNegativeStreak && a.Kind != alert.KindSatisfactionDrop {
		return Draft{}, fmt.Errorf("%w: alert %d is a %s, not a negative rating", ErrInvalid, a.ID, a.Kind)
	}
	var b strings.Builder
	b.WriteString(a.Message)
	for _, k := range []string{"counter_name", "operator_name", "service_name", "score"} {
		if v := a.Details[k]; v != "" {
			fmt.Fprintf(&b, "\n%s: %s", strings.ReplaceAll(k, "_", " "), v)
		}
	}
	fmt.Fprintf(&b, "\ntime: %s (alert #%d)", a.LastSeen.UTC().Format(time.RFC3339), a.ID)
	return Draft{Org: a.Subject.Org, Site: a.Subject.Site, Department: d.cfg.DefaultDepartment(), Channel: ChannelKeypadNegative,
		Type: TypeService, Description: b.String(), SourceAlert: a.ID}, nil
}

// Get returns an incident in p's scope and its trail.
func (d *Desk) Get(ctx context.Context, p access.Principal, id int64) (Incident, error) {
	in, err := d.opts.Store.Get(ctx, id)
	if err != nil {
		return Incident{}, err
	}
	if !p.Scope.Allows(in.Org, in.Site) {
		return Incident{}, ErrNotFound
	}
	return in, nil
}

// Trail returns the steps of an incident in p's scope.
func (d *Desk) Trail(ctx context.Context, p access.Principal, id int64) ([]Step, error) {
	if _, err := d.Get(ctx, p, id); err != nil {
		return nil, err
	}
	return d.opts.Store.Trail(ctx, id)
}

// List returns the incidents in p's scope that match f.
func (d *Desk) List(ctx context.Context, p access.Principal, f Filter) ([]Incident, error) {
	f.Scope = p.Scope
	return d.opts.Store.List(ctx, f)
}

// CheckDeadlines marks incidents past their deadline overdue, counts the
// late reaction for the department and raises an incident_overdue alert
// that the alert routing takes to people. It returns how many it marked.
func (d *Desk) CheckDeadlines(ctx context.Context) (int, error) {
	now := d.clock.Now()
	due, err := d.opts.Store.Due(ctx, now)
	if err != nil {
		return 0, fmt.Errorf("due incidents: %w", err)
	}
	n := 0
	for _, c := range due {
		d.mu.Lock()
		in, err := d.opts.Store.Get(ctx, c.ID)
		if err != nil || in.Overdue || !in.Open() || in.DueAt.After(now) {
			d.mu.Unlock()
			continue
		}
		in.Overdue, in.Late, in.UpdatedAt = true, in.Late+1, now
		stage := "pass on"
		if in.State != StateRegistered {
			stage = "close"
		}
		st := Step{Time: now, Action: ActionOverdue, State: in.State,
			Comment: fmt.Sprintf("deadline to %s passed at %s", stage, in.DueAt.UTC().Format(time.RFC3339))}
		err = d.opts.Store.Save(ctx, &in, &st)
		d.mu.Unlock()
		if err != nil {
			return n, fmt.Errorf("mark incident %d overdue: %w", in.ID, err)
		}
		n++
		d.m.late.WithLabelValues(in.Department).Inc()
		d.record(ctx, in, st, nil)
		d.raise(ctx, in, stage)
	}
	return n, nil
}

// Link is the incident's page in the console.
func (d *Desk) Link(id int64) string {
	return strings.TrimRight(d.cfg.BaseURL, "/") + "/incidents/" + strconv.FormatInt(id, 10)
}

func subjectOf(in Incident) alert.Subject {
	// The counter label carries the incident, so each overdue incident is
	// its own alert; org and site let routes pick the site's people.
	return alert.Subject{Org: in.Org, Site: in.Site, Counter: "incident-" + strconv.FormatInt(in.ID, 10)}
}

// Alert details an incident_overdue alert carries for its notice.
const (
	DetailIncident   = "incident"
	DetailDepartment = "department"
	DetailLink       = "link"
	DetailType       = "type"
	DetailPassedTo   = "passed_to"
	DetailDue        = "due"
)

func (d *Desk) raise(ctx context.Context, in Incident, stage string) {
	if d.opts.Raiser == nil {
		return
	}
	dept, _ := d.cfg.Department(in.Department)
	f := alert.Finding{
		Kind: KindOverdue, Severity: alert.SeverityWarning, Subject: subjectOf(in), Time: d.clock.Now(),
		Message: fmt.Sprintf("Incident #%d (%s, %s) was not %s by its deadline", in.ID, in.Type, dept.Title, map[string]string{"pass on": "passed on", "close": "closed"}[stage]),
		Hint:    "Open the incident, take it over or report its outcome to Customer Service.",
		Details: map[string]string{
			DetailIncident: strconv.FormatInt(in.ID, 10), DetailDepartment: dept.Title, DetailLink: d.Link(in.ID),
			DetailType: string(in.Type), DetailPassedTo: in.PassedTo, DetailDue: in.DueAt.UTC().Format(time.RFC3339),
		},
	}
	if err := d.opts.Raiser.Raise(ctx, f); err != nil {
		d.log.Warn("incident: overdue alert not raised", "incident", in.ID, "err", err)
	}
}

func (d *Desk) resolveAlert(ctx context.Context, in Incident, why string) {
	if d.opts.Raiser == nil {
		return
	}
	if err := d.opts.Raiser.Resolve(ctx, KindOverdue, subjectOf(in), "incident "+why); err != nil {
		d.log.Warn("incident: overdue alert not resolved", "incident", in.ID, "err", err)
	}
}

// PurgePersonal deletes the customer's name and contact from incidents
// closed longer than RetainPersonal ago; the trail keeps that it was done.
func (d *Desk) PurgePersonal(ctx context.Context) (int, error) {
	now := d.clock.Now()
	old, err := d.opts.Store.Personal(ctx, now.Add(-d.cfg.RetainPersonal))
	if err != nil {
		return 0, fmt.Errorf("incidents with personal data: %w", err)
	}
	n := 0
	for _, c := range old {
		d.mu.Lock()
		in, err := d.opts.Store.Get(ctx, c.ID)
		if err == nil && in.State == StateClosed {
			in.CustomerName, in.CustomerContact, in.PurgedAt = "", "", now
			err = d.opts.Store.Save(ctx, &in, &Step{Time: now, Action: ActionPurged, State: in.State,
				Comment: "customer's name and contact deleted after the retention period"})
			if err == nil {
				n++
			}
		}
		d.mu.Unlock()
		if err != nil {
			return n, fmt.Errorf("purge incident %d: %w", c.ID, err)
		}
	}
	return n, nil
}

// Run checks deadlines and retention every CheckEvery until ctx ends.
func (d *Desk) Run(ctx context.Context) error {
	t := d.clock.NewTicker(d.cfg.CheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.Chan():
			if d.opts.Leader != nil && !d.opts.Leader() {
				continue
			}
			if _, err := d.CheckDeadlines(ctx); err != nil && ctx.Err() == nil {
				d.log.Warn("incident deadlines", "err", err)
			}
			if _, err := d.PurgePersonal(ctx); err != nil && ctx.Err() == nil {
				d.log.Warn("incident retention", "err", err)
			}
		}
	}
}

// record writes the step as an `incident` point. An error is logged: the
// step is already stored.
func (d *Desk) record(ctx context.Context, in Incident, st Step, errs map[string]int) {
	d.m.steps.WithLabelValues(string(st.Action)).Inc()
	if d.opts.Spool == nil {
		return
	}
	// Interaction errors are only on `rejected` points (errs), one per
	// refusal, so summing them over all points counts each once.
	p := influx.Incident{
		ID: in.ID, Org: in.Org, Site: in.Site, Department: in.Department, Channel: string(in.Channel), Type: string(in.Type),
		State: string(st.State), Open: in.Open(), Closed: !in.Open(), Thanks: in.Type == TypeThanks,
		Errors: errs, PassMin: -1, CloseMin: -1, Time: pointTime(st),
	}
	switch st.Action {
	case ActionPassed:
		p.PassMin = minutes(in.PassedAt.Sub(in.CreatedAt))
	case ActionClosed:
		p.CloseMin = minutes(in.ClosedAt.Sub(in.CreatedAt))
		p.WithinSet, p.WithinDeadline = true, in.DelayReason == "" // a reason is asked exactly when late
		p.Reason = in.DelayReason
	case ActionOverdue:
		p.State, p.Late = "overdue", true
	case ActionUpdated, ActionAttached, ActionPurged:
		return // no figure changes
	}
	if st.State == "rejected" {
		p.Open, p.Closed = false, false
	}
	if err := d.opts.Spool.Append(ctx, influx.IncidentLine(nil, p)); err != nil {
		d.log.Warn("incident point not written", "incident", in.ID, "err", err)
	}
}

// pointTime makes each step's point unique: the step's millisecond plus
// its id in the sub-millisecond digits, so two incidents with the same
// tags registered in the same millisecond are two points, and a step
// written twice overwrites itself.
func pointTime(st Step) time.Time {
	return st.Time.Truncate(time.Millisecond).Add(time.Duration(st.ID % 1_000_000))
}

func minutes(d time.Duration) float64 {
	return math.Round(d.Minutes()*10) / 10
}
