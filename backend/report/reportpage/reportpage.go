// Package reportpage is the console's Reports page: a form (scope,
// period, format, language) whose answer is the report file, for people
// who never open Grafana. It works without JavaScript: the form is a GET
// to /reports/download, which serves the file through report.Handler, so
// scope checks and bad-input answers are the API's.
package reportpage

import (
	"embed"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/report"
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
	return nil
}

// option is one entry of the scope list: value "org" or "org/site".
type option struct{ Value, Label string }

type formData struct {
	Places  []option
	Kinds   []string
	Formats []string
	Today   string
}

func (p *page) form(w http.ResponseWriter, r *http.Request) {
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
	p.opts.Console.Render(w, r, p.tpl, formData{
		Places: opts, Kinds: []string{"today", "week", "month", "quarter"}, Formats: report.Formats,
		Today: p.opts.Now().Format(time.DateOnly),
	})
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
