// Package adminpages is the console's administration of people: the
// accounts (create, change role, scope, language, disable, set a new
// password) and the audit log. Admins only.
package adminpages

import (
	"embed"
	"errors"
	"net/http"
	"strings"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/account"
	"github.com/semko/semko/backend/web"
)

//go:embed templates/*.html messages/*.json
var files embed.FS

// Pages serves the administration pages.
type Pages struct {
	con             *web.Console
	acc             *account.Service
	accounts, audit *web.Page
}

// Register adds the pages and their navigation entries.
func Register(con *web.Console) error {
	p := &Pages{con: con, acc: con.Accounts()}
	var err error
	if p.accounts, err = con.Page(files, "templates/accounts.html"); err != nil {
		return err
	}
	if p.audit, err = con.Page(files, "templates/audit.html"); err != nil {
		return err
	}
	if err := con.AddCatalog(files, "messages"); err != nil {
		return err
	}
	admin := access.Allow(access.Admin)
	con.HandleFunc("GET /admin/accounts", admin, p.serveAccounts)
	con.HandleFunc("POST /admin/accounts", admin, p.create)
	con.HandleFunc("POST /admin/accounts/{name}", admin, p.update)
	con.HandleFunc("GET /admin/audit", admin, p.serveAudit)
	con.AddNav(web.NavItem{Path: "/admin/accounts", Label: "nav.accounts", Roles: []access.Role{access.Admin}, Order: 70},
		web.NavItem{Path: "/admin/audit", Label: "nav.audit", Roles: []access.Role{access.Admin}, Order: 80})
	return nil
}

type accountsData struct {
	Accounts []account.Account
	Form     map[string]string
	Error    string
	Field    string
	For      string // the account the error is about ("" for the new one)
}

func (p *Pages) serveAccounts(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, accountsData{Form: map[string]string{}})
}

func (p *Pages) render(w http.ResponseWriter, r *http.Request, status int, d accountsData) {
	list, err := p.acc.Store().Accounts(r.Context())
	if err != nil {
		p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
		return
	}
	d.Accounts = list
	p.con.RenderStatus(w, r, status, p.accounts, d)
}

// splitList reads a list of ids separated by commas, spaces or lines.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' })
}

// fieldOf names the field an account error is about.
func fieldOf(err error) string {
	msg := err.Error()
	for _, f := range []string{"name", "password", "role", "language", "scope"} {
		if strings.Contains(msg, f) {
			if f == "language" {
				return "lang"
			}
			return f
		}
	}
	return "name"
}

func (p *Pages) create(w http.ResponseWriter, r *http.Request) {
	if !p.con.Form(w, r) {
		return
	}
	f := map[string]string{}
	for _, k := range []string{"name", "role", "orgs", "sites", "lang"} {
		f[k] = strings.TrimSpace(r.PostForm.Get(k))
	}
	a := account.Account{Name: f["name"], Role: access.Role(f["role"]), Lang: f["lang"],
		Scope: access.Scope{Orgs: splitList(f["orgs"]), Sites: splitList(f["sites"])}}
	err := p.acc.Create(r.Context(), a, r.PostForm.Get("password"))
	if err != nil {
		status, field := http.StatusUnprocessableEntity, fieldOf(err)
		if errors.Is(err, account.ErrExists) {
			status, field = http.StatusConflict, "name"
		} else if !errors.Is(err, account.ErrInvalid) {
			p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
			return
		}
		p.render(w, r, status, accountsData{Form: f, Error: err.Error(), Field: field})
		return
	}
	web.Redirect(w, r, "/admin/accounts?done=saved")
}

func (p *Pages) update(w http.ResponseWriter, r *http.Request) {
	if !p.con.Form(w, r) {
		return
	}
	name := r.PathValue("name")
	a, _, err := p.acc.Store().Account(r.Context(), name)
	if errors.Is(err, account.ErrNotFound) {
		p.con.Error(w, r, http.StatusNotFound, "error.not_found")
		return
	}
	if err != nil {
		p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
		return
	}
	a.Role = access.Role(strings.TrimSpace(r.PostForm.Get("role")))
	a.Scope = access.Scope{Orgs: splitList(r.PostForm.Get("orgs")), Sites: splitList(r.PostForm.Get("sites"))}
	a.Lang = strings.TrimSpace(r.PostForm.Get("lang"))
	a.Disabled = r.PostForm.Get("disabled") == "on"
	fail := func(err error) {
		p.render(w, r, http.StatusUnprocessableEntity, accountsData{Form: map[string]string{}, Error: err.Error(), Field: fieldOf(err), For: name})
	}
	// Check the new password before saving anything: nothing half-saved.
	pw := r.PostForm.Get("password")
	if pw != "" {
		if err := account.ValidPassword(pw); err != nil {
			fail(err)
			return
		}
	}
	if err := p.acc.Update(r.Context(), a); err != nil {
		fail(err)
		return
	}
	if pw != "" {
		if err := p.acc.SetPassword(r.Context(), name, pw); err != nil {
			p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
			return
		}
	}
	web.Redirect(w, r, "/admin/accounts?done=saved")
}

func (p *Pages) serveAudit(w http.ResponseWriter, r *http.Request) {
	log, err := p.acc.Store().Audit(r.Context(), 500)
	if err != nil {
		p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
		return
	}
	p.con.Render(w, r, p.audit, log)
}
