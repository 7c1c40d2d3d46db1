// Package figures is the manager's part of the console's home page:
// today's satisfied share and participation of the viewer's scope, read
// from InfluxDB with the rollup package's definitions, and links into the
// Grafana dashboards with the scope's organisation and site set.
package figures

import (
	"context"
	"embed"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/rollup"
	"github.com/semko/semko/backend/web"
	"github.com/semko/semko/internal/influxdb"
)

//go:embed templates/*.html messages/*.json
var files embed.FS

// Options configure the section.
type Options struct {
	DB *influxdb.Client
	// GrafanaURL is Grafana's address (empty: no links).
	GrafanaURL string
	// Location is where "today" starts; default time.Local.
	Location *time.Location
	Now      func() time.Time
}

// Roles see the figures on their home page.
var Roles = []access.Role{access.Admin, access.Manager, access.CustomerService, access.Viewer}

// Register adds the home section.
func Register(con *web.Console, opts Options) error {
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	page, err := con.Page(files, "templates/figures.html")
	if err != nil {
		return err
	}
	if err := con.AddCatalog(files, "messages"); err != nil {
		return err
	}
	con.AddHome(web.HomePart{Name: "figures", Roles: Roles, Order: 5, Render: func(r *http.Request) (template.HTML, error) {
		return con.Fragment(r, page, "home-figures", compute(r.Context(), opts, access.ScopeOf(r.Context())))
	}})
	return nil
}

// Link is a dashboard link with the scope's variables set.
type Link struct{ Label, URL string }

// View is what the section shows.
type View struct {
	Votes         int64
	Share         string // "82%" or ""
	Participation string
	Error         string
	Links         []Link
}

// pct shows a share as a whole percentage, "" when undefined.
func pct(v float64, ok bool) string {
	if !ok {
		return ""
	}
	return strconv.FormatFloat(v*100, 'f', 0, 64) + "%"
}

func compute(ctx context.Context, opts Options, scope access.Scope) View {
	now := opts.Now().In(opts.Location)
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, opts.Location)
	var v View
	if opts.DB != nil {
		places, err := rollup.Since(ctx, opts.DB, midnight)
		if err != nil {
			v.Error = err.Error()
		}
		var sum rollup.Tally
		for p, t := range places {
			if scope.Allows(p.Org, p.Site) {
				sum.Add(t)
			}
		}
		v.Votes = sum.Votes
		v.Share = pct(sum.SatisfiedShare())
		v.Participation = pct(sum.Participation())
	}
	if opts.GrafanaURL != "" {
		base := strings.TrimRight(opts.GrafanaURL, "/") + "/d/semko-satisfaction"
		if scope.All {
			v.Links = append(v.Links, Link{Label: "all", URL: base})
		}
		orgs := slices.Clone(scope.Orgs)
		sort.Strings(orgs)
		for _, o := range orgs {
			v.Links = append(v.Links, Link{Label: o, URL: base + "?" + url.Values{"var-org": {o}}.Encode()})
		}
		for _, s := range scope.Sites {
			v.Links = append(v.Links, Link{Label: s, URL: base + "?" + url.Values{"var-site": {s}}.Encode()})
		}
	}
	return v
}
