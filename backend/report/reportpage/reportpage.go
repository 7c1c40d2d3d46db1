// Package reportpage is the console's Reports page: a form (scope,
// period, format, language) whose answer is the report file, for people
// who never open Grafana. It works without JavaScript: the form is a GET
// to /reports/download, which serves the file through report.Handler, so
// scope checks and bad-input answers are the API's.
package reportpage

import (
	"cmp"
	"embed"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/report"
	"github.com/semko/semko/backend/report/delivery"
	"github.com/semko/semko/backend/web"
)

//go:embed templates/*.html messages/*.json
var files embed.FS

// Place is an organisation or one of its sites, as the form offers them.
type Place struct {
	Org, OrgName, Site, SiteName string
}

// Options wires the page.
type Options struct {
	Console *web.Console
	Reports *report.Handler
	// Places lists every organisation and site; the page offers those in
	// the caller's scope.
	Places func() []Place
	Now    func() time.Time
	// Subscriptions, when set, lets an account list, add and delete its
	// scheduled reports on the page.
	Subscriptions delivery.Store
}

// Roles that see the page: everyone but integrators (API tokens only).
var Roles = access.Staff

type page struct {
	opts Options
	tpl  *web.Page
}

// Register adds the page, its messages and its navigation entry.
func Register(opts Options) error {
	if opts.Console == nil || opts.Reports == nil || opts.Places == nil {
		return fmt.Errorf("reportpage: Console, Reports and Places are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := opts.Console.AddCatalog(files, "messages"); err != nil {
		return fmt.Errorf("reportpage: %w", err)
	}
	tpl, err := opts.Console.Page(files, "templates/reports.html")
	if err != nil {
		return fmt.Errorf("reportpage: %w", err)
	}
	p := &page{opts: opts, tpl: tpl}
	opts.Console.AddNav(web.NavItem{Path: "/reports", Label: "nav.reports", Roles: Roles, Order: 45})
	opts.Console.HandleFunc("GET /reports", access.Allow(Roles...), p.form)
	opts.Console.HandleFunc("GET /reports/download", access.Allow(Roles...), p.download)
	if opts.Subscriptions != nil {
		opts.Console.HandleFunc("POST /reports/subscriptions", access.Allow(Roles...), p.subscribe)
		opts.Console.HandleFunc("POST /reports/subscriptions/{id}/delete", access.Allow(Roles...), p.unsubscribe)
	}
	return nil
}

// option is one entry of the scope list: value "org" or "org/site".
type option struct{ Value, Label string }

type formData struct {
	Places  []option
	Kinds   []string
	Formats []string
	Today   string
	// Subscriptions
	Subscribing bool // the store is there
	Subs        []subRow
	SubKinds    []string
	Error       string // why the last subscription was refused
}

// subRow is one of the caller's subscriptions as listed.
type subRow struct {
	ID                              int64
	Place, Period, Format, Lang, To string
}

func (p *page) form(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "")
}

func (p *page) render(w http.ResponseWriter, r *http.Request, status int, errMsg string) {
	scope := access.ScopeOf(r.Context())
	var opts []option
	seenOrg := map[string]bool{}
	places := p.opts.Places()
	for _, pl := range places {
		if pl.Site == "" && scope.Allows(pl.Org, "") && !seenOrg[pl.Org] {
			seenOrg[pl.Org] = true
			opts = append(opts, option{pl.Org, pl.OrgName})
		}
	}
	for _, pl := range places {
		if pl.Site != "" && scope.Allows(pl.Org, pl.Site) {
			opts = append(opts, option{pl.Org + "/" + pl.Site, pl.OrgName + " · " + pl.SiteName})
		}
	}
	data := formData{
		Places: opts, Kinds: []string{"today", "week", "month", "quarter"}, Formats: report.Formats,
		Today: p.opts.Now().Format(time.DateOnly), Error: errMsg,
	}
	if p.opts.Subscriptions != nil {
		data.Subscribing, data.SubKinds = true, []string{"week", "month", "quarter"}
		caller, _ := access.FromContext(r.Context())
		mine, err := delivery.Mine(r, p.opts.Subscriptions, caller.Account)
		if err != nil {
			p.opts.Console.Error(w, r, http.StatusInternalServerError, "error.internal")
			return
		}
		labels := map[string]string{}
		for _, o := range opts {
			labels[o.Value] = o.Label
		}
		for _, s := range mine {
			place := s.Org
			if s.Site != "" {
				place += "/" + s.Site
			}
			data.Subs = append(data.Subs, subRow{ID: s.ID, Place: cmp.Or(labels[place], place), Period: string(s.Period), Format: s.Format,
				Lang: s.Lang, To: strings.Join(s.Recipients, ", ")})
		}
	}
	p.opts.Console.RenderStatus(w, r, status, p.tpl, data)
}

// subscribe adds a subscription of the caller's from the form: the same
// checks as the API (scope, period, format, language, recipients).
func (p *page) subscribe(w http.ResponseWriter, r *http.Request) {
	if !p.opts.Console.Form(w, r) {
		return
	}
	f := r.PostForm
	org, site, _ := strings.Cut(f.Get("place"), "/")
	var to []string
	for _, a := range strings.FieldsFunc(f.Get("recipients"), func(c rune) bool { return c == ',' || c == ';' || c == ' ' || c == '\n' }) {
		to = append(to, strings.TrimSpace(a))
	}
	_, err := delivery.Create(r, p.opts.Subscriptions, delivery.Subscription{Org: org, Site: site, Period: report.Kind(f.Get("period")),
		Format: f.Get("format"), Lang: f.Get("lang"), Recipients: to}, p.opts.Now())
	switch {
	case errors.Is(err, delivery.ErrNotFound):
		p.opts.Console.Error(w, r, http.StatusNotFound, "error.not_found")
	case errors.Is(err, delivery.ErrInvalid):
		p.render(w, r, http.StatusUnprocessableEntity, err.Error())
	case err != nil:
		p.opts.Console.Error(w, r, http.StatusInternalServerError, "error.internal")
	default:
		web.Redirect(w, r, "/reports?done=saved")
	}
}

// unsubscribe deletes one of the caller's subscriptions.
func (p *page) unsubscribe(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err == nil {
		err = delivery.Delete(r, p.opts.Subscriptions, id)
	}
	switch {
	case err == nil:
		web.Redirect(w, r, "/reports?done=saved")
	case errors.Is(err, delivery.ErrNotFound) || errors.Is(err, strconv.ErrSyntax) || errors.Is(err, strconv.ErrRange):
		p.opts.Console.Error(w, r, http.StatusNotFound, "error.not_found")
	default:
		p.opts.Console.Error(w, r, http.StatusInternalServerError, "error.internal")
	}
}

// download turns the form's place into org and site and answers as the
// API does.
func (p *page) download(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	org, site, _ := strings.Cut(q.Get("place"), "/")
	q.Del("place")
	q.Set("org", org)
	if site != "" {
		q.Set("site", site)
	}
	if !slices.Contains([]string{"today", "week", "month", "quarter", "custom"}, q.Get("period")) {
		q.Set("period", "week")
	}
	r2 := r.Clone(r.Context())
	r2.URL = &url.URL{Path: "/api/v1/reports", RawQuery: q.Encode()}
	p.opts.Reports.ServeHTTP(w, r2)
}
