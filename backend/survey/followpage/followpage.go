// Package followpage adds the console's "Follow-ups" pages (backend/web):
// the responsible people's list of NPS follow-ups in their scope with the
// deadlines, one follow-up with the customer's answer, the form to record
// what was done and the e-mail that tells the customer.
package followpage

import (
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/survey"
	"github.com/semko/semko/backend/survey/engine"
	"github.com/semko/semko/backend/survey/surveyapi"
	"github.com/semko/semko/backend/web"
	"github.com/semko/semko/fleet/registry"
)

//go:embed templates/*.html messages/*.json
var files embed.FS

type pages struct {
	con        *web.Console
	e          *engine.Engine
	reg        func() *registry.Registry
	log        *slog.Logger
	list, show *web.Page
}

// Register adds the pages and their navigation entry to con.
func Register(con *web.Console, e *engine.Engine, reg func() *registry.Registry, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &pages{con: con, e: e, reg: reg, log: log}
	var err error
	if p.list, err = con.Page(files, "templates/followups.html"); err != nil {
		return fmt.Errorf("follow-up pages: %w", err)
	}
	if p.show, err = con.Page(files, "templates/followup.html"); err != nil {
		return fmt.Errorf("follow-up pages: %w", err)
	}
	if err := con.AddCatalog(files, "messages"); err != nil {
		return fmt.Errorf("follow-up pages: %w", err)
	}
	read, write := access.Allow(surveyapi.ReadRoles...), access.Allow(surveyapi.WriteRoles...)
	con.Handle("GET /followups", read, http.HandlerFunc(p.listPage))
	con.Handle("GET /followups/{id}", read, http.HandlerFunc(p.showPage))
	con.Handle("POST /followups/{id}/close", write, http.HandlerFunc(p.close))
	con.Handle("POST /followups/{id}/notify", write, http.HandlerFunc(p.notify))
	con.AddNav(web.NavItem{Path: "/followups", Label: "nav.followups", Roles: surveyapi.ReadRoles, Order: 45})
	return nil
}

// row is one follow-up as the list shows it; times are the site's.
type row struct {
	ID             int64
	Score          int
	Where, Reasons string
	Due, State     string
	Overdue        bool
}

type listData struct {
	Rows      []row
	Stats     engine.Stats
	InTimePct string
}

// local formats t in the site's time zone, as the person on site reads it.
func (p *pages) local(site string, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	loc := time.UTC
	if s, ok := p.reg().Site(site); ok && s.Location != nil {
		loc = s.Location
	}
	return t.In(loc).Format("2006-01-02 15:04 MST")
}

// reasons names the reason categories in the reader's language; a
// category without a message (a deployment's own) shows its code.
func (p *pages) reasons(r *http.Request, codes []string) string {
	if len(codes) == 0 {
		return "—"
	}
	lang := web.Lang(r)
	out := make([]string, len(codes))
	for i, c := range codes {
		key := "followup.reason_" + c
		if out[i] = p.con.T(lang, key); out[i] == key {
			out[i] = c
		}
	}
	return strings.Join(out, ", ")
}

func (p *pages) where(f survey.FollowUp) string {
	reg := p.reg()
	name := func(id, n string) string {
		if n != "" {
			return n
		}
		return id
	}
	c, _ := reg.Counter(f.Counter)
	s, _ := reg.Site(f.Site)
	return name(f.Counter, c.Name) + " · " + name(f.Site, s.Name)
}

func (p *pages) listPage(w http.ResponseWriter, r *http.Request) {
	all, err := p.e.FollowUps(r.Context(), survey.FollowUpFilter{Limit: 1000})
	if err != nil {
		p.log.Error("follow-ups page", "err", err)
		p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
		return
	}
	scope := access.ScopeOf(r.Context())
	now := p.e.Now()
	var in []survey.FollowUp
	var d listData
	// Open ones first (by deadline), then the closed.
	for _, open := range []bool{true, false} {
		for _, f := range all {
			if !scope.Allows(f.Org, f.Site) || (f.State == survey.FollowUpOpen) != open {
				continue
			}
			in = append(in, f)
			d.Rows = append(d.Rows, row{ID: f.ID, Score: f.Score, Where: p.where(f), Reasons: p.reasons(r, f.Reasons),
				Due: p.local(f.Site, f.Due), State: string(f.State), Overdue: open && now.After(f.Due)})
		}
	}
	d.Stats = engine.StatsOf(in, now)
	d.InTimePct = strconv.FormatFloat(100*d.Stats.InTimeShare, 'f', 0, 64)
	p.con.Render(w, r, p.list, d)
}

type showData struct {
	F                           survey.FollowUp
	Where, Reasons, Due, Opened string
	Closed                      string
	Overdue                     bool
	Error                       string
}

// load returns the follow-up of the path if it is in the caller's scope;
// otherwise it has answered 404.
func (p *pages) load(w http.ResponseWriter, r *http.Request) (survey.FollowUp, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		p.con.Error(w, r, http.StatusNotFound, "error.not_found")
		return survey.FollowUp{}, false
	}
	f, err := p.e.FollowUp(r.Context(), id)
	if err != nil || !access.ScopeOf(r.Context()).Allows(f.Org, f.Site) {
		if err != nil && !errors.Is(err, survey.ErrNotFound) {
			p.log.Error("follow-up page", "err", err)
		}
		p.con.Error(w, r, http.StatusNotFound, "error.not_found")
		return f, false
	}
	return f, true
}

func (p *pages) render(w http.ResponseWriter, r *http.Request, status int, f survey.FollowUp, errMsg string) {
	d := showData{F: f, Where: p.where(f), Reasons: p.reasons(r, f.Reasons), Due: p.local(f.Site, f.Due),
		Opened: p.local(f.Site, f.Opened), Overdue: f.State == survey.FollowUpOpen && p.e.Now().After(f.Due), Error: errMsg}
	if f.State == survey.FollowUpClosed {
		d.Closed = p.local(f.Site, f.Closed)
	}
	p.con.RenderStatus(w, r, status, p.show, d)
}

func (p *pages) showPage(w http.ResponseWriter, r *http.Request) {
	if f, ok := p.load(w, r); ok {
		p.render(w, r, http.StatusOK, f, "")
	}
}

func (p *pages) close(w http.ResponseWriter, r *http.Request) {
	f, ok := p.load(w, r)
	if !ok || !p.con.Form(w, r) {
		return
	}
	who, _ := access.FromContext(r.Context())
	_, err := p.e.Close(r.Context(), f.ID, who.Account, r.PostFormValue("outcome"))
	lang := web.Lang(r)
	switch {
	case errors.Is(err, survey.ErrClosed):
		p.render(w, r, http.StatusConflict, f, p.con.T(lang, "followup.already_closed"))
	case errors.Is(err, survey.ErrInvalid):
		p.render(w, r, http.StatusUnprocessableEntity, f, p.con.T(lang, "followup.outcome_required"))
	case err != nil:
		p.log.Error("close follow-up", "err", err)
		p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
	default:
		web.Redirect(w, r, fmt.Sprintf("/followups/%d?done=followup_closed", f.ID))
	}
}

func (p *pages) notify(w http.ResponseWriter, r *http.Request) {
	f, ok := p.load(w, r)
	if !ok || !p.con.Form(w, r) {
		return
	}
	if _, err := p.e.NotifyCustomer(r.Context(), f.ID, r.PostFormValue("text")); err != nil {
		p.log.Warn("notify customer", "id", f.ID, "err", err)
		p.render(w, r, http.StatusUnprocessableEntity, f, p.con.T(web.Lang(r), "followup.no_mail"))
		return
	}
	web.Redirect(w, r, fmt.Sprintf("/followups/%d?done=followup_told", f.ID))
}
