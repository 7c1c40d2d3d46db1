// Package web is the console: server-rendered pages for the people who
// run Semko (sign-in, home per role, devices, alerts, fleet and account
// administration). Pages are Go templates embedded in the binary, styled by
// one CSS file and helped by one small script (lists refresh themselves);
// every page works without it. All routes go through the access router, so
// roles and scopes apply to pages exactly as to the API.
//
// Other packages add their own pages with Page, AddCatalog, AddNav and
// Handle; see README.md, "Adding a page".
package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/account"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

//go:embed messages/*.json
var messageFS embed.FS

// DefaultMaxForm bounds a form's body: every form of the console is far
// smaller, and a larger one is refused with a clear message.
const DefaultMaxForm = 64 << 10

// Options configure the console.
type Options struct {
	Router   *access.Router
	Accounts *account.Service
	// Secure marks cookies Secure even when the request came over plain
	// HTTP (behind a TLS-terminating proxy). A request over TLS always
	// gets Secure cookies.
	Secure bool
	// MaxForm bounds form bodies; default DefaultMaxForm.
	MaxForm int64
	Logger  *slog.Logger
}

// Console renders pages and holds what other packages add: templates,
// message catalogs, navigation entries.
type Console struct {
	opts   Options
	router *access.Router
	acc    *account.Service
	log    *slog.Logger
	base   *template.Template

	mu        sync.RWMutex
	msgs      map[string]map[string]string // lang -> key -> text
	nav       []NavItem
	homeParts []HomePart

	signin, home, errPage, accountPage *Page
}

// NavItem is one entry of the navigation bar, shown to the roles given
// (all signed-in roles when empty).
type NavItem struct {
	Path  string        // "/devices"
	Label string        // message key, e.g. "nav.devices"
	Roles []access.Role // who sees it
	Order int           // position, ascending; the console's own use 10, 20, ...
}

// New builds the console and registers its own routes on opts.Router:
// /static/, /signin, /signout, / and /account.
func New(opts Options) (*Console, error) {
	if opts.Router == nil || opts.Accounts == nil {
		return nil, errors.New("web: Router and Accounts are required")
	}
	if opts.MaxForm <= 0 {
		opts.MaxForm = DefaultMaxForm
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Console{opts: opts, router: opts.Router, acc: opts.Accounts, log: opts.Logger, msgs: map[string]map[string]string{}}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("web: layout: %w", err)
	}
	c.base = base
	if err := c.AddCatalog(messageFS, "messages"); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		dst  **Page
		file string
	}{{&c.signin, "signin.html"}, {&c.home, "home.html"}, {&c.errPage, "error.html"}, {&c.accountPage, "account.html"}} {
		if *p.dst, err = c.Page(templateFS, "templates/"+p.file); err != nil {
			return nil, err
		}
	}
	static, _ := fs.Sub(staticFS, "static")
	c.Handle("GET /static/", access.Rule{Public: true}, http.StripPrefix("/static/", staticHandler(static)))
	c.Handle("GET /signin", access.Rule{Public: true}, http.HandlerFunc(c.signinForm))
	c.Handle("POST /signin", access.Rule{Public: true}, http.HandlerFunc(c.signinPost))
	c.Handle("POST /signout", access.Rule{Any: true}, http.HandlerFunc(c.signout))
	c.Handle("GET /{$}", access.Rule{Any: true}, http.HandlerFunc(c.homePage))
	c.registerAccount()
	return c, nil
}

// Router is the access router the console's routes are on.
func (c *Console) Router() *access.Router { return c.router }

// Accounts is the account service.
func (c *Console) Accounts() *account.Service { return c.acc }

// Handle registers a page route on the access router. Pages are outside
// /api/: a request without a principal is sent to the sign-in page.
func (c *Console) Handle(pattern string, rule access.Rule, h http.Handler) {
	c.router.Handle(pattern, rule, h)
}

// HandleFunc is Handle for a function.
func (c *Console) HandleFunc(pattern string, rule access.Rule, h func(http.ResponseWriter, *http.Request)) {
	c.Handle(pattern, rule, http.HandlerFunc(h))
}

// AddNav adds an entry to the navigation bar.
func (c *Console) AddNav(items ...NavItem) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nav = append(c.nav, items...)
	sort.SliceStable(c.nav, func(i, j int) bool { return c.nav[i].Order < c.nav[j].Order })
}

// AddMessages adds message texts for one language; a key already present
// is replaced.
func (c *Console) AddMessages(lang string, msgs map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.msgs[lang] == nil {
		c.msgs[lang] = map[string]string{}
	}
	for k, v := range msgs {
		c.msgs[lang][k] = v
	}
}

// AddCatalog reads dir/en.json, dir/bg.json, dir/ru.json from fsys (flat
// JSON objects of key to text) and adds them. A missing language file is
// an error: every page must speak all three.
func (c *Console) AddCatalog(fsys fs.FS, dir string) error {
	for _, lang := range account.Langs {
		b, err := fs.ReadFile(fsys, path.Join(dir, lang+".json"))
		if err != nil {
			return fmt.Errorf("web: catalog %s: %w", lang, err)
		}
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("web: catalog %s/%s.json: %w", dir, lang, err)
		}
		c.AddMessages(lang, m)
	}
	return nil
}

// Missing lists the keys of English that lang lacks (for catalog tests).
func (c *Console) Missing(lang string) []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []string
	for k := range c.msgs["en"] {
		if _, ok := c.msgs[lang][k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// T translates key into lang, formatting args with fmt.Sprintf when
// given. It falls back to English, then to the key itself (a missing text
// shows, it does not break the page).
func (c *Console) T(lang, key string, args ...any) string {
	c.mu.RLock()
	msg, ok := c.msgs[lang][key]
	if !ok {
		msg, ok = c.msgs["en"][key]
	}
	c.mu.RUnlock()
	if !ok {
		msg = key
	}
	if len(args) > 0 {
		return fmt.Sprintf(msg, args...)
	}
	return msg
}

// Page is one page's template: the layout with the page's own file,
// which defines "title" and "content" (and may define "head" for extra
// markup in the head, never a script).
type Page struct {
	t *template.Template
}

// Page parses a page file from fsys over the layout.
func (c *Console) Page(fsys fs.FS, file string) (*Page, error) {
	t, err := c.base.Clone()
	if err != nil {
		return nil, fmt.Errorf("web: page %s: %w", file, err)
	}
	if t, err = t.ParseFS(fsys, file); err != nil {
		return nil, fmt.Errorf("web: page %s: %w", file, err)
	}
	return &Page{t: t}, nil
}

// MustPage is Page that panics, for package-level pages parsed at start.
func (c *Console) MustPage(fsys fs.FS, file string) *Page {
	p, err := c.Page(fsys, file)
	if err != nil {
		panic(err)
	}
	return p
}

// View is what a page template gets as ".": the page's own Data and the
// request's language, principal and navigation.
type View struct {
	Lang      string
	Principal access.Principal
	SignedIn  bool
	Nav       []NavItem
	Path      string
	Data      any
	Flash     string // a one-off notice (e.g. "saved")
	c         *Console
}

// T translates key into the viewer's language (see Console.T).
func (v View) T(key string, args ...any) string { return v.c.T(v.Lang, key, args...) }

// Is reports whether the viewer has one of the roles named.
func (v View) Is(roles ...string) bool {
	return v.SignedIn && slices.Contains(roles, string(v.Principal.Role))
}

// Routed reports whether the console serves pattern ("GET /incidents/new")
// and the viewer's role may call it: a page links to another part (the
// incident desk) only when that part is there for this viewer.
func (v View) Routed(pattern string) bool {
	if !v.SignedIn {
		return false
	}
	for _, rt := range v.c.router.Routes() {
		if rt.Pattern == pattern {
			return rt.Rule.Permits(v.Principal.Role)
		}
	}
	return false
}

// Langs are the console's languages, for language pickers.
func (v View) Langs() []string { return account.Langs }

// Roles are the roles, for role pickers.
func (v View) Roles() []access.Role { return access.Roles }

// Lang is the language for a request: the principal's (its account's or
// the one chosen at sign-in), else the browser's Accept-Language.
func Lang(r *http.Request) string {
	if p, ok := access.FromContext(r.Context()); ok && p.Lang != "" {
		return p.Lang
	}
	return FromAcceptLanguage(r.Header.Get("Accept-Language"))
}

// FromAcceptLanguage picks the first of en, bg, ru the header lists (by
// quality), English when none.
func FromAcceptLanguage(h string) string {
	best, bestQ := "en", -1.0
	for _, part := range strings.Split(h, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if _, err := fmt.Sscanf(v, "%g", &q); err != nil {
				continue
			}
		}
		base, _, _ := strings.Cut(strings.ToLower(tag), "-")
		if slices.Contains(account.Langs, base) && q > bestQ {
			best, bestQ = base, q
		}
	}
	return best
}

// View builds the view of a request with the page's data.
func (c *Console) View(r *http.Request, data any) View {
	p, ok := access.FromContext(r.Context())
	v := View{Lang: Lang(r), Principal: p, SignedIn: ok, Path: r.URL.Path, Data: data, c: c, Flash: r.URL.Query().Get("done")}
	if ok {
		c.mu.RLock()
		for _, n := range c.nav {
			if len(n.Roles) == 0 || slices.Contains(n.Roles, p.Role) {
				v.Nav = append(v.Nav, n)
			}
		}
		c.mu.RUnlock()
	}
	return v
}

// Render renders page with data and status 200.
func (c *Console) Render(w http.ResponseWriter, r *http.Request, p *Page, data any) {
	c.RenderStatus(w, r, http.StatusOK, p, data)
}

// RenderStatus renders page with data and status. The page is rendered
// into a buffer first, so a template error answers 500 instead of half a
// page.
func (c *Console) RenderStatus(w http.ResponseWriter, r *http.Request, status int, p *Page, data any) {
	var buf bytes.Buffer
	if err := p.t.ExecuteTemplate(&buf, "layout", c.View(r, data)); err != nil {
		c.log.Error("page not rendered", "path", r.URL.Path, "err", err)
		http.Error(w, "page not rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// Error renders the error page with a message key (translated) and
// status.
func (c *Console) Error(w http.ResponseWriter, r *http.Request, status int, key string, args ...any) {
	c.RenderStatus(w, r, status, c.errPage, map[string]any{"Status": status, "Message": c.T(Lang(r), key, args...)})
}

// Form parses a POSTed form with the size bound. On failure it has
// already answered (413 with a clear message for an oversized form) and
// returns false: the handler saves nothing.
func (c *Console) Form(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, c.opts.MaxForm)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			c.Error(w, r, http.StatusRequestEntityTooLarge, "error.too_large", c.opts.MaxForm/1024)
			return false
		}
		c.Error(w, r, http.StatusBadRequest, "error.bad_form")
		return false
	}
	return true
}

// Redirect answers a form POST with 303 to target (the pattern
// post/redirect/get: a reload does not post again).
func Redirect(w http.ResponseWriter, r *http.Request, target string) {
	http.Redirect(w, r, target, http.StatusSeeOther)
}

var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return time.Since(t).Round(time.Second).String()
	},
	"join": strings.Join,
	"list": func(s ...string) []string { return s },
}

// CSP forbids inline script and every origin but the console's own.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// Protect wraps the backend's whole handler: cross-origin protection on
// every state-changing request (net/http's CrossOriginProtection, which
// reads Sec-Fetch-Site and Origin; API clients without a browser send
// neither and pass), the Content-Security-Policy and the usual hardening
// headers.
func Protect(h http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "cross-origin request refused: use the console's own forms", http.StatusForbidden)
	}))
	inner := cop.Handler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", CSP)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		inner.ServeHTTP(w, r)
	})
}

func staticHandler(fsys fs.FS) http.Handler {
	fileServer := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=300")
		fileServer.ServeHTTP(w, r)
	})
}

// HomePart is a section of the home page for some roles (all when Roles
// is empty). Render returns its HTML, rendered with Fragment; an error
// leaves the section out and is logged.
type HomePart struct {
	Name   string
	Roles  []access.Role
	Order  int
	Render func(r *http.Request) (template.HTML, error)
}

// HomeSection is a rendered HomePart.
type HomeSection struct {
	Name string
	HTML template.HTML
}

// AddHome adds a section to the home page.
func (c *Console) AddHome(parts ...HomePart) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.homeParts = append(c.homeParts, parts...)
	sort.SliceStable(c.homeParts, func(i, j int) bool { return c.homeParts[i].Order < c.homeParts[j].Order })
}

// Fragment renders the template name of page p (a "define" in its file)
// with the request's View around data, for home sections and for the
// parts of a page the script refreshes.
func (c *Console) Fragment(r *http.Request, p *Page, name string, data any) (template.HTML, error) {
	var buf bytes.Buffer
	if err := p.t.ExecuteTemplate(&buf, name, c.View(r, data)); err != nil {
		return "", fmt.Errorf("web: fragment %s: %w", name, err)
	}
	return template.HTML(buf.String()), nil //nolint:gosec // produced by html/template, already escaped
}
