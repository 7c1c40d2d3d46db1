// Package deskpages is the console's incident desk (backend/web): the list
// of incidents in the viewer's scope (filters by state, department, type
// and site; deadlines shown, overdue ones marked; it refreshes itself),
// the register form (multipart, with scans), the incident's page with its
// attachments, trail and the life-cycle forms (pass on, update, close with
// the outcome and the "+1 call", reopen), and the home section of open
// incidents nearest their deadline.
//
// Every rule lives in backend/incident: the pages call the Desk and show
// its field errors next to their fields. Registration reads the form with
// incidentapi.ReadForm, the API's own reader.
package deskpages

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/incident"
	"github.com/semko/semko/backend/incident/incidentapi"
	"github.com/semko/semko/backend/web"
)

//go:embed templates/*.html messages/*.json
var files embed.FS

// Who may do what in the pages; the desk checks each step again (the
// person an incident was passed to acts on it whatever the role, a viewer
// never).
var (
	// Registrars open incidents from the console: Customer Service and
	// shop staff (managers). Integrators register through the API.
	Registrars = []access.Role{access.Admin, access.Manager, access.CustomerService}
	// Handlers may take a step on an incident: Customer Service, managers,
	// and a technician it was passed to.
	Handlers = []access.Role{access.Admin, access.Manager, access.CustomerService, access.Technician}
)

// Place is a site the form offers.
type Place struct {
	Org, Site, Name string
}

// Alerts finds the alert an incident is opened from (*alert.Manager).
type Alerts interface {
	Get(ctx context.Context, id int64) (alert.Alert, []alert.Event, error)
}

// Source is what an incident is opened from besides an alert: an NPS
// detractor's answer. Draft returns the pre-filled incident (its org and
// site decide the scope) or incident.ErrNotFound.
type Source func(ctx context.Context, id int64) (incident.Draft, error)

// Options configure the pages.
type Options struct {
	Desk *incident.Desk
	// Sites lists the sites the form offers (filtered by the viewer's
	// scope).
	Sites func() []Place
	// Alerts: nil, no "from alert" pre-fill.
	Alerts Alerts
	// FollowUp: nil, no "from an NPS follow-up" pre-fill.
	FollowUp Source
	// Location is a site's time zone (nil or a nil answer: UTC).
	Location func(site string) *time.Location
	Logger   *slog.Logger
}

// Pages serves the desk's pages.
type Pages struct {
	con                   *web.Console
	o                     Options
	log                   *slog.Logger
	list, form, one, home *web.Page
}

// Register adds the pages, their navigation entry and the home section.
func Register(con *web.Console, o Options) error {
	if o.Desk == nil || o.Sites == nil {
		return errors.New("desk pages: Desk and Sites are required")
	}
	p := &Pages{con: con, o: o, log: o.Logger}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	for _, pg := range []struct {
		dst  **web.Page
		file string
	}{{&p.list, "incidents.html"}, {&p.form, "new.html"}, {&p.one, "incident.html"}, {&p.home, "home.html"}} {
		var err error
		if *pg.dst, err = con.Page(files, "templates/"+pg.file); err != nil {
			return fmt.Errorf("desk pages: %w", err)
		}
	}
	if err := con.AddCatalog(files, "messages"); err != nil {
		return fmt.Errorf("desk pages: %w", err)
	}
	at := incidentapi.Locator(o.Desk)
	read, register, act := access.Allow(access.Staff...), access.Allow(Registrars...), access.Allow(Handlers...).At(at)
	con.HandleFunc("GET /incidents", read, p.serveList)
	con.HandleFunc("GET /incidents/new", register, p.serveForm)
	con.HandleFunc("POST /incidents", register, p.register)
	con.HandleFunc("GET /incidents/{id}", read.At(at), p.serveOne)
	con.HandleFunc("POST /incidents/{id}/pass", act, p.pass)
	con.HandleFunc("POST /incidents/{id}/update", act, p.update)
	con.HandleFunc("POST /incidents/{id}/close", act, p.close)
	con.HandleFunc("POST /incidents/{id}/reopen", act, p.reopen)
	con.HandleFunc("POST /incidents/{id}/attach", act, p.attach)
	con.AddNav(web.NavItem{Path: "/incidents", Label: "nav.incidents", Roles: access.Staff, Order: 35})
	con.AddHome(web.HomePart{Name: "incidents", Roles: Registrars, Order: 8, Render: p.homePart})
	return nil
}

// row is an incident as lists show it; times are the site's, as the
// people there read them.
type row struct {
	incident.Incident
	Overdue                       bool   // deadline passed, stage unfinished
	Dept                          string // the department's title
	Due, Created, Closed          string
	StateL, ChannelL, TypeL, Late string // labels in the viewer's language
	SiteName                      string
	Summary                       string // the description's first line, shortened for lists
}

// summary is the first line of s, at most 140 characters.
func summary(s string) string {
	line, _, more := strings.Cut(s, "\n")
	line = strings.TrimSpace(line)
	if r := []rune(line); len(r) > 140 {
		return string(r[:139]) + "…"
	} else if more {
		return line + " …"
	}
	return line
}

// local formats t in the site's time zone.
func (p *Pages) local(site string, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	loc := time.UTC
	if p.o.Location != nil {
		if l := p.o.Location(site); l != nil {
			loc = l
		}
	}
	return t.In(loc).Format("2006-01-02 15:04 MST")
}

func (p *Pages) rows(r *http.Request, list []incident.Incident) []row {
	lang := web.Lang(r)
	now := p.o.Desk.Now()
	names := map[string]string{}
	for _, s := range p.o.Sites() {
		names[s.Site] = s.Name
	}
	cfg := p.o.Desk.Config()
	out := make([]row, len(list))
	for i, in := range list {
		d, _ := cfg.Department(in.Department)
		out[i] = row{Incident: in, Overdue: in.Open() && (in.Overdue || !in.DueAt.IsZero() && now.After(in.DueAt)), Dept: cmp.Or(d.Title, in.Department),
			Due: p.local(in.Site, in.DueAt), Created: p.local(in.Site, in.CreatedAt), Closed: p.local(in.Site, in.ClosedAt),
			StateL: p.label(lang, "state", string(in.State)), ChannelL: p.label(lang, "channel", string(in.Channel)),
			TypeL: p.label(lang, "type", string(in.Type)), SiteName: cmp.Or(names[in.Site], in.Site), Summary: summary(in.Description)}
		if in.DelayReason != "" {
			out[i].Late = p.label(lang, "reason", in.DelayReason)
		}
	}
	return out
}

// maxSize is the largest attachment, for people: "10 MiB", "64 KiB".
func (p *Pages) maxSize() string {
	if n := p.o.Desk.Files().Max(); n < 1<<20 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d MiB", p.o.Desk.Files().Max()>>20)
}

// option is a choice of a select, with its label in the viewer's language.
type option struct {
	Value, Label string
}

// label translates a code (a state, channel, type, reason); a code the
// catalogs do not know (a configured type) shows as itself.
func (p *Pages) label(lang, prefix, code string) string {
	key := "desk." + prefix + "." + code
	if t := p.con.T(lang, key); t != key {
		return t
	}
	return strings.ReplaceAll(code, "_", " ")
}

func options[T ~string](p *Pages, lang, prefix string, codes []T) []option {
	out := make([]option, len(codes))
	for i, c := range codes {
		out[i] = option{Value: string(c), Label: p.label(lang, prefix, string(c))}
	}
	return out
}

func deptOptions(depts []incident.Department) []option {
	out := make([]option, len(depts))
	for i, d := range depts {
		out[i] = option{Value: d.Name, Label: d.Title}
	}
	return out
}

// listStates are the state filter's choices: "open" (the default) is every
// state but closed, "" everything.
var listStates = []string{"open", string(incident.StateRegistered), string(incident.StatePassed), string(incident.StateInProgress), string(incident.StateClosed), "all"}

type listData struct {
	Rows                    []row
	State, Dept, Type, Site string
	States, Depts, Types    []option
	Sites                   []Place
	CanRegister             bool
}

func (p *Pages) serveList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cfg := p.o.Desk.Config()
	lang := web.Lang(r)
	d := listData{State: q.Get("state"), Dept: q.Get("department"), Type: q.Get("type"), Site: q.Get("site"),
		States: options(p, lang, "filter", listStates), Depts: deptOptions(cfg.Departments),
		Types: options(p, lang, "type", cfg.AllTypes()), Sites: p.sites(r)}
	if !slices.Contains(listStates, d.State) {
		d.State = "open"
	}
	f := incident.Filter{Department: d.Dept, Type: incident.Type(d.Type), Site: d.Site, Limit: 200}
	switch d.State {
	case "open":
		f.Open = true
	case "all":
	default:
		f.State = incident.State(d.State)
	}
	pr, _ := access.FromContext(r.Context())
	list, err := p.o.Desk.List(r.Context(), pr, f)
	if err != nil {
		p.log.Error("incident list", "err", err)
		p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
		return
	}
	d.Rows = p.rows(r, list)
	d.CanRegister = slices.Contains(Registrars, pr.Role)
	p.con.Render(w, r, p.list, d)
}

// sites are the sites in the viewer's scope, for the form and filters.
func (p *Pages) sites(r *http.Request) []Place {
	scope := access.ScopeOf(r.Context())
	var out []Place
	for _, s := range p.o.Sites() {
		if scope.Allows(s.Org, s.Site) {
			out = append(out, s)
		}
	}
	return out
}

type formData struct {
	Draft    incident.Draft
	Errors   map[string]string // field -> message
	Error    string            // about the whole form
	Orgs     []string
	Sites    []Place
	Depts    []option
	Types    []option
	Channels []option
	Source   string // what the draft was opened from, for the heading
	MaxSize  string
	MaxFiles int
}

func (p *Pages) formData(r *http.Request, dr incident.Draft) formData {
	cfg := p.o.Desk.Config()
	lang := web.Lang(r)
	d := formData{Draft: dr, Sites: p.sites(r), Depts: deptOptions(cfg.Departments), Types: options(p, lang, "type", cfg.AllTypes()),
		Channels: options(p, lang, "channel", incident.Channels),
		MaxSize:  p.maxSize(), MaxFiles: cfg.MaxAttachments}
	for _, s := range d.Sites {
		if !slices.Contains(d.Orgs, s.Org) {
			d.Orgs = append(d.Orgs, s.Org)
		}
	}
	if d.Draft.Org == "" && len(d.Orgs) == 1 {
		d.Draft.Org = d.Orgs[0]
	}
	if d.Draft.Site == "" && len(d.Sites) == 1 {
		d.Draft.Site = d.Sites[0].Site
	}
	return d
}

// serveForm shows the register form, empty or pre-filled from a
// negative-vote alert (?alert=ID) or an NPS detractor's follow-up
// (?followup=ID). A source outside the viewer's scope is 404.
func (p *Pages) serveForm(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	dr := incident.Draft{Channel: incident.ChannelInPerson, Department: p.o.Desk.Config().DefaultDepartment(), Type: incident.TypeService}
	source := ""
	switch {
	case q.Get("alert") != "":
		a, ok := p.alert(r, q.Get("alert"))
		if !ok {
			p.con.Error(w, r, http.StatusNotFound, "error.not_found")
			return
		}
		var err error
		if dr, err = p.o.Desk.FromAlert(a); err != nil {
			p.con.Error(w, r, http.StatusUnprocessableEntity, "desk.not_negative")
			return
		}
		source = p.con.T(web.Lang(r), "desk.from_alert", a.ID)
	case q.Get("followup") != "":
		id, err := strconv.ParseInt(q.Get("followup"), 10, 64)
		if p.o.FollowUp == nil || err != nil {
			p.con.Error(w, r, http.StatusNotFound, "error.not_found")
			return
		}
		dr, err = p.o.FollowUp(r.Context(), id)
		if err != nil || !access.ScopeOf(r.Context()).Allows(dr.Org, dr.Site) {
			if err != nil && !errors.Is(err, incident.ErrNotFound) {
				p.log.Error("incident from follow-up", "id", id, "err", err)
			}
			p.con.Error(w, r, http.StatusNotFound, "error.not_found")
			return
		}
		source = p.con.T(web.Lang(r), "desk.from_followup", id)
	}
	d := p.formData(r, dr)
	d.Source = source
	p.con.Render(w, r, p.form, d)
}

func (p *Pages) alert(r *http.Request, s string) (alert.Alert, bool) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || p.o.Alerts == nil {
		return alert.Alert{}, false
	}
	a, _, err := p.o.Alerts.Get(r.Context(), id)
	if err != nil || !access.ScopeOf(r.Context()).Allows(a.Subject.Org, a.Subject.Site) {
		return alert.Alert{}, false
	}
	return a, true
}

// register reads the multipart form (files stored as they stream in) and
// registers the incident. Any refusal removes the files this request
// stored and shows the form again with what was typed and the problem
// next to its field: nothing half-saved.
func (p *Pages) register(w http.ResponseWriter, r *http.Request) {
	pr, _ := access.FromContext(r.Context())
	dr, created, err := incidentapi.ReadForm(w, r, p.o.Desk)
	if err == nil {
		var in incident.Incident
		if in, err = p.o.Desk.Register(r.Context(), pr, dr); err == nil {
			web.Redirect(w, r, "/incidents/"+strconv.FormatInt(in.ID, 10)+"?done=incident_registered")
			return
		}
	}
	incidentapi.RemoveFiles(r.Context(), p.o.Desk, created)
	// Read what is left of a refused upload (within the form's bound), so
	// the browser, still sending, gets the answer instead of a reset.
	_, _ = io.Copy(io.Discard, r.Body)
	status := incidentapi.Status(err)
	d := p.formData(r, dr)
	d.Draft.Attachments = nil
	d.Errors = p.fieldErrors(r, err)
	if len(d.Errors) == 0 {
		if status == http.StatusInternalServerError {
			p.log.Error("register incident", "err", err)
			p.con.Error(w, r, status, "error.internal")
			return
		}
		d.Error = p.message(r, err)
	}
	p.con.RenderStatus(w, r, status, p.form, d)
}

// fieldErrors turns the desk's answer into messages by field, in the
// viewer's language where the console has one for the interaction error
// or the file problem; otherwise the desk's own sentence.
func (p *Pages) fieldErrors(r *http.Request, err error) map[string]string {
	lang := web.Lang(r)
	var fe *incident.FieldErrors
	if errors.As(err, &fe) {
		out := map[string]string{}
		for field, msg := range fe.Fields {
			switch code := fe.Codes[field]; code {
			case "":
			case incident.ErrCodeResolution, incident.ErrCodeDocuments:
				// The desk's sentence names the file and the counts.
				msg = p.con.T(lang, "desk.err."+code) + " (" + msg + ")"
			default:
				msg = p.con.T(lang, "desk.err."+code)
			}
			out[field] = msg
		}
		return out
	}
	switch {
	case errors.Is(err, incident.ErrTooLarge):
		return map[string]string{"attachments": p.con.T(lang, "desk.too_large", p.maxSize())}
	case errors.Is(err, incident.ErrFileType):
		return map[string]string{"attachments": p.con.T(lang, "desk.wrong_type")}
	case errors.Is(err, incident.ErrUnreadable):
		return map[string]string{"attachments": p.con.T(lang, "desk.unreadable")}
	}
	return nil
}

func (p *Pages) message(r *http.Request, err error) string {
	lang := web.Lang(r)
	switch incidentapi.Status(err) {
	case http.StatusNotFound:
		return p.con.T(lang, "desk.out_of_scope")
	case http.StatusForbidden:
		return p.con.T(lang, "error.forbidden")
	case http.StatusConflict:
		return p.con.T(lang, "desk.conflict")
	case http.StatusRequestEntityTooLarge:
		return p.con.T(lang, "desk.too_large", p.maxSize())
	}
	return p.con.T(lang, "error.bad_form")
}

// file is an attachment with its size for people.
type file struct {
	incident.Attachment
	SizeL string
}

// stepRow is a step of the trail with its time in the site's zone.
type stepRow struct {
	incident.Step
	When, Action string
}

type oneData struct {
	In       row
	Trail    []stepRow
	Dept     incident.Department
	Images   []file
	Docs     []file
	Late     bool // closing now needs a reason
	Reasons  []option
	CanAct   bool
	Form     string            // the form the errors belong to
	Errors   map[string]string // field -> message
	Error    string
	Values   url.Values // what was typed, shown again
	MaxFiles int
}

func (p *Pages) serveOne(w http.ResponseWriter, r *http.Request) {
	p.renderOne(w, r, http.StatusOK, "", nil, "", nil)
}

func (p *Pages) renderOne(w http.ResponseWriter, r *http.Request, status int, form string, errs map[string]string, msg string, values url.Values) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	pr, _ := access.FromContext(r.Context())
	in, err := p.o.Desk.Get(r.Context(), pr, id)
	var trail []incident.Step
	if err == nil {
		trail, err = p.o.Desk.Trail(r.Context(), pr, id)
	}
	if errors.Is(err, incident.ErrNotFound) {
		p.con.Error(w, r, http.StatusNotFound, "error.not_found")
		return
	}
	if err != nil {
		p.log.Error("incident page", "id", id, "err", err)
		p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
		return
	}
	cfg := p.o.Desk.Config()
	d := oneData{In: p.rows(r, []incident.Incident{in})[0], Reasons: options(p, web.Lang(r), "reason", cfg.DelayReasons), Form: form, Errors: errs, Error: msg,
		Values: values, MaxFiles: cfg.MaxAttachments}
	d.Dept, _ = cfg.Department(in.Department)
	for _, st := range trail {
		d.Trail = append(d.Trail, stepRow{Step: st, When: p.local(in.Site, st.Time), Action: p.label(web.Lang(r), "action", string(st.Action))})
	}
	d.Late = in.Open() && !in.DueAt.IsZero() && p.o.Desk.Now().After(in.DueAt)
	// The desk decides; the page only hides forms the viewer could not use.
	d.CanAct = pr.Role != access.Viewer && pr.Role != access.Integrator &&
		(pr.Role != access.Technician || in.PassedTo == pr.Account)
	for _, a := range in.Attachments {
		f := file{Attachment: a, SizeL: fmt.Sprintf("%d KiB", (a.Size+1023)/1024)}
		if strings.HasPrefix(a.Type, "image/") {
			d.Images = append(d.Images, f)
		} else {
			d.Docs = append(d.Docs, f)
		}
	}
	p.con.RenderStatus(w, r, status, p.one, d)
}

// step runs one life-cycle step from a form and answers post/redirect/get,
// or the page again with the desk's problem next to the form's field.
func (p *Pages) step(w http.ResponseWriter, r *http.Request, form, done string, fn func(pr access.Principal, id int64) error) {
	if !p.con.Form(w, r) {
		return
	}
	pr, _ := access.FromContext(r.Context())
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	err := fn(pr, id)
	if err == nil {
		web.Redirect(w, r, "/incidents/"+r.PathValue("id")+"?done="+done)
		return
	}
	status := incidentapi.Status(err)
	if status == http.StatusInternalServerError {
		p.log.Error("incident step", "form", form, "id", id, "err", err)
		p.con.Error(w, r, status, "error.internal")
		return
	}
	if status == http.StatusNotFound {
		p.con.Error(w, r, status, "error.not_found")
		return
	}
	errs := p.fieldErrors(r, err)
	msg := ""
	if len(errs) == 0 {
		msg = p.message(r, err)
	}
	p.renderOne(w, r, status, form, errs, msg, r.PostForm)
}

func (p *Pages) pass(w http.ResponseWriter, r *http.Request) {
	p.step(w, r, "pass", "incident_passed", func(pr access.Principal, id int64) error {
		_, err := p.o.Desk.PassOn(r.Context(), pr, id, r.PostForm.Get("to"), r.PostForm.Get("comment"))
		return err
	})
}

func (p *Pages) update(w http.ResponseWriter, r *http.Request) {
	p.step(w, r, "update", "incident_updated", func(pr access.Principal, id int64) error {
		_, err := p.o.Desk.Update(r.Context(), pr, id, r.PostForm.Get("comment"))
		return err
	})
}

func (p *Pages) close(w http.ResponseWriter, r *http.Request) {
	p.step(w, r, "close", "incident_closed", func(pr access.Principal, id int64) error {
		_, err := p.o.Desk.Close(r.Context(), pr, id, r.PostForm.Get("outcome"), r.PostForm.Get("called_back") == "1", r.PostForm.Get("delay_reason"))
		return err
	})
}

func (p *Pages) reopen(w http.ResponseWriter, r *http.Request) {
	p.step(w, r, "reopen", "incident_reopened", func(pr access.Principal, id int64) error {
		_, err := p.o.Desk.Reopen(r.Context(), pr, id, r.PostForm.Get("comment"))
		return err
	})
}

// attach adds the files of a multipart form to the incident, one by one
// through the desk (each checked for size, type and resolution).
func (p *Pages) attach(w http.ResponseWriter, r *http.Request) {
	pr, _ := access.FromContext(r.Context())
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	cfg := p.o.Desk.Config()
	r.Body = http.MaxBytesReader(w, r.Body, int64(cfg.MaxAttachments)*cfg.MaxAttachment+web.DefaultMaxForm)
	err := errNoFile
	mr, merr := r.MultipartReader()
	if merr != nil {
		err = fmt.Errorf("%w: %v", incident.ErrUnreadable, merr)
	}
	for merr == nil {
		part, perr := mr.NextPart()
		if perr == io.EOF {
			break
		}
		if perr != nil {
			err = fmt.Errorf("%w: %v", incident.ErrUnreadable, perr)
			break
		}
		if part.FormName() != "file" || part.FileName() == "" {
			continue
		}
		if _, err = p.o.Desk.Attach(r.Context(), pr, id, part.FileName(), part); err != nil {
			break
		}
	}
	if err == nil {
		web.Redirect(w, r, "/incidents/"+r.PathValue("id")+"?done=incident_attached")
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	if errors.Is(err, errNoFile) {
		p.renderOne(w, r, http.StatusUnprocessableEntity, "attach", map[string]string{"attachments": p.con.T(web.Lang(r), "desk.no_file")}, "", nil)
		return
	}
	status := incidentapi.Status(err)
	if status == http.StatusInternalServerError || status == http.StatusNotFound {
		if status == http.StatusInternalServerError {
			p.log.Error("attach", "id", id, "err", err)
		}
		key := "error.internal"
		if status == http.StatusNotFound {
			key = "error.not_found"
		}
		p.con.Error(w, r, status, key)
		return
	}
	errs := p.fieldErrors(r, err)
	msg := ""
	if len(errs) == 0 {
		msg = p.message(r, err)
	}
	p.renderOne(w, r, status, "attach", errs, msg, nil)
}

var errNoFile = errors.New("no file chosen")

// homePart lists the open incidents in scope, nearest deadline first.
func (p *Pages) homePart(r *http.Request) (template.HTML, error) {
	pr, _ := access.FromContext(r.Context())
	list, err := p.o.Desk.List(r.Context(), pr, incident.Filter{Open: true, Limit: 1000})
	if err != nil {
		return "", err
	}
	slices.SortStableFunc(list, func(a, b incident.Incident) int {
		if a.DueAt.IsZero() != b.DueAt.IsZero() {
			if a.DueAt.IsZero() {
				return 1
			}
			return -1
		}
		return a.DueAt.Compare(b.DueAt)
	})
	if len(list) > 10 {
		list = list[:10]
	}
	return p.con.Fragment(r, p.home, "home-incidents", p.rows(r, list))
}
