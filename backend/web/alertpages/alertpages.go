// Package alertpages is the console's alerts: a list by state, kind and
// site that refreshes itself, an alert's page with its trail, and the
// acknowledge, resolve and silence forms; plus the home section of open
// device alerts nearest their deadline. Everything is scoped: a list shows
// the alerts of the viewer's scope, another organisation's alert answers
// 404.
package alertpages

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/alertapi"
	"github.com/semko/semko/backend/web"
)

//go:embed templates/*.html messages/*.json
var files embed.FS

// MaxComment bounds a comment or a silence reason.
const MaxComment = 2000

// Pages serves the alert pages.
type Pages struct {
	con  *web.Console
	m    *alert.Manager
	list *web.Page
	one  *web.Page
	home *web.Page
}

// Register adds the alert pages, their navigation entry and the home
// section to the console.
func Register(con *web.Console, m *alert.Manager) error {
	p := &Pages{con: con, m: m}
	var err error
	if p.list, err = con.Page(files, "templates/alerts.html"); err != nil {
		return err
	}
	if p.one, err = con.Page(files, "templates/alert.html"); err != nil {
		return err
	}
	if p.home, err = con.Page(files, "templates/home.html"); err != nil {
		return err
	}
	if err := con.AddCatalog(files, "messages"); err != nil {
		return err
	}
	at := alertapi.Locator(m)
	read := access.Allow(access.Staff...)
	act := access.Allow(alertapi.Responders...).At(at)
	con.HandleFunc("GET /alerts", read, p.serveList)
	con.HandleFunc("GET /alerts/{id}", read.At(at), p.serveOne)
	con.HandleFunc("POST /alerts/{id}/ack", act, p.ack)
	con.HandleFunc("POST /alerts/{id}/resolve", act, p.resolve)
	con.HandleFunc("POST /alerts/{id}/silence", act, p.silence)
	con.AddNav(web.NavItem{Path: "/alerts", Label: "nav.alerts", Roles: access.Staff, Order: 20})
	con.AddHome(web.HomePart{Name: "alerts", Roles: []access.Role{access.Admin, access.Technician, access.Manager}, Order: 10, Render: p.homePart})
	return nil
}

type listData struct {
	Alerts []alert.Alert
	State  string
	Kind   string
	Site   string
	Kinds  []alert.Kind
	Error  string
}

var states = []string{"open", "firing", "acknowledged", "resolved", ""}

func (p *Pages) serveList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := listData{State: q.Get("state"), Kind: q.Get("kind"), Site: q.Get("site")}
	if !q.Has("state") {
		d.State = "open"
	}
	if !slices.Contains(states, d.State) {
		d.State = "open"
	}
	list, err := alertapi.ListScoped(r.Context(), p.m, alert.Filter{State: d.State, Kind: alert.Kind(d.Kind), Site: d.Site, Limit: 200},
		access.ScopeOf(r.Context()))
	if errors.Is(err, alert.ErrInvalid) {
		d.Error = err.Error()
	} else if err != nil {
		p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
		return
	}
	d.Alerts = list
	seen := map[alert.Kind]bool{}
	for _, a := range list {
		if !seen[a.Kind] {
			seen[a.Kind] = true
			d.Kinds = append(d.Kinds, a.Kind)
		}
	}
	if d.Kind != "" && !seen[alert.Kind(d.Kind)] {
		d.Kinds = append(d.Kinds, alert.Kind(d.Kind))
	}
	p.con.Render(w, r, p.list, d)
}

type oneData struct {
	Alert  alert.Alert
	Events []alert.Event
	Error  string
	Field  string
	CanAct bool
}

func (p *Pages) load(r *http.Request) (oneData, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return oneData{}, alert.ErrNotFound
	}
	a, evs, err := p.m.Get(r.Context(), id)
	pr, _ := access.FromContext(r.Context())
	return oneData{Alert: a, Events: evs, CanAct: slices.Contains(alertapi.Responders, pr.Role)}, err
}

func (p *Pages) serveOne(w http.ResponseWriter, r *http.Request) {
	p.renderOne(w, r, http.StatusOK, "", "")
}

func (p *Pages) renderOne(w http.ResponseWriter, r *http.Request, status int, field, msg string) {
	d, err := p.load(r)
	if errors.Is(err, alert.ErrNotFound) {
		p.con.Error(w, r, http.StatusNotFound, "error.not_found")
		return
	}
	if err != nil {
		p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
		return
	}
	d.Field, d.Error = field, msg
	p.con.RenderStatus(w, r, status, p.one, d)
}

// comment reads the form's comment: at most MaxComment characters.
func (p *Pages) comment(w http.ResponseWriter, r *http.Request, field string) (string, bool) {
	if !p.con.Form(w, r) {
		return "", false
	}
	c := strings.TrimSpace(r.PostForm.Get(field))
	if utf8.RuneCountInString(c) > MaxComment {
		p.renderOne(w, r, http.StatusUnprocessableEntity, field, p.con.T(web.Lang(r), "alerts.too_long", MaxComment))
		return "", false
	}
	return c, true
}

func (p *Pages) ack(w http.ResponseWriter, r *http.Request) {
	p.act(w, r, "ack", p.m.Acknowledge)
}

func (p *Pages) resolve(w http.ResponseWriter, r *http.Request) {
	p.act(w, r, "resolve", p.m.ResolveByHand)
}

func (p *Pages) act(w http.ResponseWriter, r *http.Request, field string, do func(ctx context.Context, id int64, by, comment string) (alert.Alert, error)) {
	comment, ok := p.comment(w, r, "comment")
	if !ok {
		return
	}
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	pr, _ := access.FromContext(r.Context())
	_, err := do(r.Context(), id, pr.Account, comment)
	switch {
	case errors.Is(err, alert.ErrResolved):
		p.renderOne(w, r, http.StatusConflict, field, p.con.T(web.Lang(r), "alerts.already_resolved"))
	case errors.Is(err, alert.ErrInvalid):
		p.renderOne(w, r, http.StatusUnprocessableEntity, field, err.Error())
	case err != nil:
		p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
	default:
		web.Redirect(w, r, "/alerts/"+r.PathValue("id")+"?done=saved")
	}
}

// silence mutes the alert's subject (its device, else its site) for the
// chosen hours: within the caller's scope by construction, since the
// subject is the alert's own.
func (p *Pages) silence(w http.ResponseWriter, r *http.Request) {
	reason, ok := p.comment(w, r, "reason")
	if !ok {
		return
	}
	lang := web.Lang(r)
	hours, err := strconv.Atoi(r.PostForm.Get("hours"))
	if err != nil || hours < 1 || hours > 24*14 {
		p.renderOne(w, r, http.StatusUnprocessableEntity, "hours", p.con.T(lang, "alerts.hours_rule"))
		return
	}
	if reason == "" {
		p.renderOne(w, r, http.StatusUnprocessableEntity, "reason", p.con.T(lang, "alerts.reason_needed"))
		return
	}
	d, err := p.load(r)
	if err != nil {
		p.con.Error(w, r, http.StatusNotFound, "error.not_found")
		return
	}
	s := d.Alert.Subject
	m := alert.Matchers{alert.LabelKind: string(d.Alert.Kind), alert.LabelOrg: s.Org}
	switch {
	case s.Device != "":
		m[alert.LabelDevice] = s.Device
	case s.Site != "":
		m[alert.LabelSite] = s.Site
	}
	pr, _ := access.FromContext(r.Context())
	if _, err := p.m.AddSilence(r.Context(), alert.Silence{Matchers: m, EndsAt: time.Now().Add(time.Duration(hours) * time.Hour),
		CreatedBy: pr.Account, Comment: reason}); err != nil {
		p.renderOne(w, r, http.StatusUnprocessableEntity, "reason", err.Error())
		return
	}
	web.Redirect(w, r, "/alerts/"+r.PathValue("id")+"?done=silenced")
}

// isDevice reports an alert about a unit: what a technician acts on.
func isDevice(a alert.Alert) bool { return a.Subject.Device != "" }

func (p *Pages) homePart(r *http.Request) (template.HTML, error) {
	list, err := alertapi.ListScoped(r.Context(), p.m, alert.Filter{State: "open", Limit: alert.MaxList}, access.ScopeOf(r.Context()))
	if err != nil {
		return "", err
	}
	pr, _ := access.FromContext(r.Context())
	if pr.Role == access.Technician {
		list = slices.DeleteFunc(list, func(a alert.Alert) bool { return !isDevice(a) })
	}
	// Nearest deadline first; alerts without one (acknowledged) last.
	slices.SortStableFunc(list, func(a, b alert.Alert) int {
		switch {
		case a.DueAt.IsZero() != b.DueAt.IsZero():
			if a.DueAt.IsZero() {
				return 1
			}
			return -1
		}
		return a.DueAt.Compare(b.DueAt)
	})
	if len(list) > 20 {
		list = list[:20]
	}
	return p.con.Fragment(r, p.home, "home-alerts", list)
}
