package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// ErrNotFound is what a Locator returns for a thing that does not exist.
// The router answers 404 for it exactly as for a thing out of scope, so
// the two cannot be told apart.
var ErrNotFound = errors.New("not found")

// Place is where an addressed thing belongs. Site may be empty for things
// of the organisation as a whole; Org may be empty for things of no
// organisation (only an All scope reaches those).
type Place struct {
	Org, Site string
}

// Locator finds the organisation and site of the thing a request
// addresses (a device, an alert), before the handler runs. Kind names
// what it locates ("device", "alert", ...): the authorization matrix test
// keeps one in-scope and one out-of-scope example per kind, so a route
// with a new kind fails that test until someone adds its examples.
type Locator struct {
	Kind string
	Find func(r *http.Request) (Place, error)
}

// Rule is who may call a route. Exactly one of Public, Any or Roles says
// who; Locate, when set, says where the addressed thing is, and a
// principal whose scope does not reach it gets 404.
type Rule struct {
	// Public routes need no principal (sign-in page, probes, static files).
	Public bool
	// Any signed-in principal, whatever its role (own password, sign-out).
	Any bool
	// Roles that may call the route. Admin is not implied: name it.
	Roles []Role
	// Locate finds the addressed thing; nil when the route addresses no
	// one thing (lists filter by ScopeOf themselves).
	Locate *Locator
}

// Check reports a rule that says nobody or contradicts itself.
func (r Rule) Check() error {
	n := 0
	if r.Public {
		n++
	}
	if r.Any {
		n++
	}
	if len(r.Roles) > 0 {
		n++
	}
	if n != 1 {
		return errors.New("a rule needs exactly one of Public, Any or Roles")
	}
	for _, role := range r.Roles {
		if !role.Valid() {
			return fmt.Errorf("unknown role %q", role)
		}
	}
	if r.Locate != nil && (r.Locate.Kind == "" || r.Locate.Find == nil) {
		return errors.New("a Locator needs Kind and Find")
	}
	if r.Public && r.Locate != nil {
		return errors.New("a public route cannot locate: there is no scope to compare")
	}
	return nil
}

// Permits reports whether role may call a route with this rule (scope
// aside).
func (r Rule) Permits(role Role) bool {
	return r.Public || r.Any || slices.Contains(r.Roles, role)
}

// Authenticator finds the principal of a request: from a bearer token, a
// session cookie. ok false means the request carries no credentials of
// this kind; an error means it carries wrong ones (401).
type Authenticator interface {
	Authenticate(r *http.Request) (p Principal, ok bool, err error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(r *http.Request) (Principal, bool, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(r *http.Request) (Principal, bool, error) { return f(r) }

// RouteInfo is one registered route, for the matrix test and the docs.
type RouteInfo struct {
	Pattern string
	Rule    Rule
	// Handler is the handler as registered (before the gate).
	Handler http.Handler
}

// Options configure a Router.
type Options struct {
	// Authenticators are asked in order; the first that recognises the
	// request's credentials decides.
	Authenticators []Authenticator
	// SignIn is where a browser without a principal is sent for a page
	// (not an /api/ route); empty answers 401 there too.
	SignIn string
	// OnChange, when set, is called after every request with an unsafe
	// method (POST, PUT, PATCH, DELETE) that a principal made and the
	// handler answered below 400: the audit log hears of every change,
	// whichever package serves it.
	OnChange func(r *http.Request, pattern string, status int)
}

// Router is the one HTTP mux of the backend: every route is registered
// with a Rule, and the gate applies it before the handler runs.
//
//	no principal, non-public route    401 (API, JSON) or 303 to SignIn (pages)
//	role not in the rule              403 (the role is the caller's own, no secret)
//	addressed thing out of scope      404, as for a thing that does not exist
//	otherwise                         the handler, with the principal in the context
type Router struct {
	opts   Options
	mux    *http.ServeMux
	mu     sync.Mutex
	routes []RouteInfo
}

// NewRouter returns an empty router.
func NewRouter(opts Options) *Router {
	return &Router{opts: opts, mux: http.NewServeMux()}
}

// AddAuthenticator appends an authenticator (before serving starts).
func (rt *Router) AddAuthenticator(a Authenticator) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.opts.Authenticators = append(rt.opts.Authenticators, a)
}

// Handle registers h for pattern (net/http syntax, e.g. "GET
// /devices/{id}") behind rule. It panics on an invalid rule or pattern,
// as http.ServeMux does: both are programming errors found at start.
func (rt *Router) Handle(pattern string, rule Rule, h http.Handler) {
	if err := rule.Check(); err != nil {
		panic(fmt.Sprintf("access: route %q: %v", pattern, err))
	}
	rt.mu.Lock()
	rt.routes = append(rt.routes, RouteInfo{Pattern: pattern, Rule: rule, Handler: h})
	rt.mu.Unlock()
	rt.mux.Handle(pattern, rt.gate(pattern, rule, h))
}

// HandleFunc is Handle for a function.
func (rt *Router) HandleFunc(pattern string, rule Rule, h func(http.ResponseWriter, *http.Request)) {
	rt.Handle(pattern, rule, http.HandlerFunc(h))
}

// Routes lists every registered route in registration order.
func (rt *Router) Routes() []RouteInfo {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return slices.Clone(rt.routes)
}

// ServeHTTP serves through the mux.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) { rt.mux.ServeHTTP(w, r) }

// Authenticate finds a request's principal with the router's
// authenticators: ok false when it carries no credentials.
func (rt *Router) Authenticate(r *http.Request) (Principal, bool, error) {
	rt.mu.Lock()
	auths := slices.Clone(rt.opts.Authenticators)
	rt.mu.Unlock()
	for _, a := range auths {
		p, ok, err := a.Authenticate(r)
		if err != nil {
			return Principal{}, false, err
		}
		if ok {
			return p, true, nil
		}
	}
	return Principal{}, false, nil
}

func (rt *Router) gate(pattern string, rule Rule, h http.Handler) http.Handler {
	api := IsAPI(pattern)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok, err := rt.Authenticate(r)
		if ok {
			r = r.WithContext(WithPrincipal(r.Context(), p))
		}
		if rule.Public {
			h.ServeHTTP(w, r)
			return
		}
		if !ok {
			rt.unauthenticated(w, r, api, err)
			return
		}
		if !rule.Permits(p.Role) {
			deny(w, api, http.StatusForbidden, "your role may not do this")
			return
		}
		if rule.Locate != nil {
			place, err := rule.Locate.Find(r)
			if err != nil && !errors.Is(err, ErrNotFound) {
				deny(w, api, http.StatusInternalServerError, "cannot look this up now, try again")
				return
			}
			if err != nil || !p.Scope.Allows(place.Org, place.Site) {
				deny(w, api, http.StatusNotFound, "not found")
				return
			}
		}
		if rt.opts.OnChange == nil || safe(r.Method) || !ok {
			h.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		if sw.status < 400 {
			rt.opts.OnChange(r, pattern, sw.status)
		}
	})
}

func safe(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (rt *Router) unauthenticated(w http.ResponseWriter, r *http.Request, api bool, err error) {
	if api || rt.opts.SignIn == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="semko"`)
		msg := "missing or wrong bearer token"
		if err != nil {
			msg = err.Error()
		}
		deny(w, true, http.StatusUnauthorized, msg)
		return
	}
	next := r.URL.RequestURI()
	target := rt.opts.SignIn
	if r.Method == http.MethodGet && next != "/" {
		target += "?next=" + url.QueryEscape(next)
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// IsAPI reports whether a pattern is an API route (answers JSON) rather
// than a page.
func IsAPI(pattern string) bool {
	_, path, found := strings.Cut(pattern, " ")
	if !found {
		path = pattern
	}
	return strings.HasPrefix(path, "/api/")
}

func deny(w http.ResponseWriter, api bool, status int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	if api {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
		return
	}
	http.Error(w, msg, status)
}

// ScopeOf is the scope of a request's principal; a request without one
// reaches nothing. Handlers that list things filter with it.
func ScopeOf(ctx context.Context) Scope {
	p, _ := FromContext(ctx)
	return p.Scope
}

// Rules shorthands for the common cases.
var (
	// Staff are the roles that read the console (everyone but integrators).
	Staff = []Role{Admin, Manager, CustomerService, Technician, Viewer}
	// Operations may act on devices and device alerts.
	Operations = []Role{Admin, Technician}
)

// Allow returns a rule for the roles given.
func Allow(roles ...Role) Rule { return Rule{Roles: roles} }

// At returns the rule with the locator set: the addressed thing must be in
// the caller's scope.
func (r Rule) At(l *Locator) Rule {
	r.Locate = l
	return r
}
