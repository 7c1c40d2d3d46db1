package backend_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/account"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/incident"
	"github.com/semko/semko/firmware-sim/fleet"
)

// consoleFixture is a backend with two organisations, an open alert in
// each, and one account per role scoped to the first organisation (the
// admin: everything), each with a personal API token.
type consoleFixture struct {
	app         *backend.App
	model       *fleet.Model
	base        string
	orgIn       string // the accounts' organisation
	orgOut      string // another organisation
	devIn       string // a device of orgIn
	devOut      string // a device of orgOut
	alertIn     int64
	alertOut    int64
	incidentIn  int64 // an incident of orgIn, one of orgOut
	incidentOut int64
	tokens      map[access.Role]string // personal API token per role
	passwords   map[access.Role]string
	accountsOf  map[access.Role]string // account name per role
}

func newConsoleFixture(t *testing.T, configure func(*backend.Config, *fleet.Model)) *consoleFixture {
	t.Helper()
	model := fleet.Generate(fleet.Spec{Seed: 21, Orgs: 2, SitesPerOrg: 1, CountersPerSite: 2})
	cfg := newTestConfig(t, model, nil)
	cfg.Console.BcryptCost = bcrypt.MinCost
	cfg.Survey.Addr = "127.0.0.1:0" // the survey's API routes too
	if configure != nil {
		configure(&cfg, model)
	}
	app := runBackend(t, cfg)
	f := &consoleFixture{
		app: app, model: model, base: "http://" + app.HTTPAddr(),
		orgIn: model.Orgs[0].ID, orgOut: model.Orgs[1].ID,
		devIn: model.Orgs[0].Sites[0].Counters[0].Device, devOut: model.Orgs[1].Sites[0].Counters[0].Device,
		tokens: map[access.Role]string{}, passwords: map[access.Role]string{}, accountsOf: map[access.Role]string{},
	}
	ctx := context.Background()
	f.alertIn = f.raise(t, model.Orgs[0].Sites[0], f.devIn)
	f.alertOut = f.raise(t, model.Orgs[1].Sites[0], f.devOut)
	f.incidentIn, f.incidentOut = f.incident(t, model.Orgs[0].Sites[0]), f.incident(t, model.Orgs[1].Sites[0])
	for _, role := range access.Roles {
		name := "test-" + strings.ReplaceAll(string(role), "_", "-")
		pw := "password-of-" + name
		a := account.Account{Name: name, Role: role, Scope: access.Scope{Orgs: []string{f.orgIn}}, Lang: "en"}
		if err := app.Accounts().Create(ctx, a, pw); err != nil {
			t.Fatal(err)
		}
		secret, _, err := app.Accounts().NewToken(ctx, name, "matrix")
		if err != nil {
			t.Fatal(err)
		}
		f.tokens[role], f.passwords[role], f.accountsOf[role] = secret, pw, name
	}
	return f
}

func (f *consoleFixture) raise(t *testing.T, site fleet.Site, device string) int64 {
	t.Helper()
	ctx := context.Background()
	subject := alert.Subject{Org: site.Org, Site: site.ID, Counter: site.Counters[0].ID, Device: device}
	if err := f.app.Alerts().Raise(ctx, alert.Finding{Kind: alert.KindOffline, Severity: alert.SeverityWarning,
		Subject: subject, Message: device + " offline", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	list, err := f.app.Alerts().List(ctx, alert.Filter{Device: device, State: "open"})
	if err != nil || len(list) != 1 {
		t.Fatalf("alert of %s: %+v %v", device, list, err)
	}
	return list[0].ID
}

func (f *consoleFixture) incident(t *testing.T, site fleet.Site) int64 {
	t.Helper()
	in, err := f.app.Incidents().Register(context.Background(), access.Principal{Account: "matrix", Role: access.Admin, Scope: access.Everything},
		incident.Draft{Org: site.Org, Site: site.ID, Department: "retail", Channel: incident.ChannelEmail, Type: incident.TypeService,
			Description: "matrix example"})
	if err != nil {
		t.Fatal(err)
	}
	return in.ID
}

// who is one column of the matrix: a role with its token, or anonymous.
type who struct {
	name  string
	role  access.Role // "" for anonymous
	token string
}

func (f *consoleFixture) everyone() []who {
	out := []who{{name: "anonymous"}}
	for _, r := range access.Roles {
		out = append(out, who{name: string(r), role: r, token: f.tokens[r]})
	}
	return out
}

var wildcard = regexp.MustCompile(`\{([^}.]+)(\.\.\.)?\}`)

// examples are the path values of located routes, by locator kind: one
// thing in the accounts' scope and one outside. A new kind must be added
// here, or the matrix fails.
func (f *consoleFixture) examples() map[string][2]map[string]string {
	return map[string][2]map[string]string{
		"device":   {{"id": f.devIn}, {"id": f.devOut}},
		"alert":    {{"id": strconv.FormatInt(f.alertIn, 10)}, {"id": strconv.FormatInt(f.alertOut, 10)}},
		"incident": {{"id": strconv.FormatInt(f.incidentIn, 10)}, {"id": strconv.FormatInt(f.incidentOut, 10)}},
	}
}

// unlocated are values for wildcards of routes without a locator.
var unlocated = map[string]string{"id": "x1", "name": "nobody", "check": "selftest", "level": "org", "path": "app.css", "hash": "0f", "alert": "1"}

// urlOf turns a route pattern into a method and path with the values
// given; ok false when a wildcard has no value.
func urlOf(pattern string, values map[string]string) (method, path string, err error) {
	method, path, found := strings.Cut(pattern, " ")
	if !found {
		method, path = "GET", pattern
	}
	path = strings.ReplaceAll(path, "{$}", "")
	path = wildcard.ReplaceAllStringFunc(path, func(m string) string {
		name := wildcard.FindStringSubmatch(m)[1]
		v, ok := values[name]
		if !ok {
			v, ok = unlocated[name]
		}
		if !ok {
			err = fmt.Errorf("no example value for {%s}", name)
		}
		return v
	})
	switch {
	case path == "/static/":
		path += "app.css"
	case strings.HasSuffix(path, "/") && path != "/":
		path += "unrouted"
	}
	return method, path, err
}

// expected is the gate's answer for a principal of role (empty:
// anonymous) whose scope reaches the thing (in) or not.
func expected(pattern string, rule access.Rule, role access.Role, in bool) int {
	switch {
	case rule.Public:
		return http.StatusOK
	case role == "":
		if access.IsAPI(pattern) {
			return http.StatusUnauthorized
		}
		return http.StatusSeeOther
	case !rule.Permits(role):
		return http.StatusForbidden
	case rule.Locate != nil && !in && role != access.Admin:
		return http.StatusNotFound
	}
	return http.StatusOK
}

// TestAuthorizationMatrix takes every route of the backend from its
// router and asks it as every role and anonymous, for a thing in the
// account's scope and one outside, checking the exact status the route's
// rule promises. The routes are served by a handler that only records
// that it was reached, behind the real gate, authenticators and locators,
// so a mutating route can be asked 14 times without changing anything;
// the real handlers are then asked with GET for the denials, and
// TestConsole* tests the handlers themselves.
func TestAuthorizationMatrix(t *testing.T) {
	f := newConsoleFixture(t, nil)
	routes := f.app.Router().Routes()
	if len(routes) < 30 {
		t.Fatalf("only %d routes registered", len(routes))
	}
	gate := access.NewRouter(access.Options{
		Authenticators: []access.Authenticator{access.AuthenticatorFunc(f.app.Router().Authenticate)},
		SignIn:         "/signin",
	})
	for _, rt := range routes {
		if err := rt.Rule.Check(); err != nil {
			t.Errorf("route %q has no valid rule: %v", rt.Pattern, err)
			continue
		}
		pattern := rt.Pattern
		gate.Handle(pattern, rt.Rule, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Route", pattern)
		}))
	}
	srv := httptest.NewServer(gate)
	t.Cleanup(srv.Close)
	examples := f.examples()
	cells := 0
	for _, rt := range routes {
		for _, scoped := range []bool{true, false} {
			values := map[string]string{}
			if rt.Rule.Locate != nil {
				ex, ok := examples[rt.Rule.Locate.Kind]
				if !ok {
					t.Errorf("route %q locates a %q: add an in-scope and an out-of-scope example to examples()", rt.Pattern, rt.Rule.Locate.Kind)
					break
				}
				values = ex[map[bool]int{true: 0, false: 1}[scoped]]
			}
			method, path, err := urlOf(rt.Pattern, values)
			if err != nil {
				t.Errorf("route %q: %v", rt.Pattern, err)
				break
			}
			for _, w := range f.everyone() {
				want := expected(rt.Pattern, rt.Rule, w.role, scoped)
				code, route := call(t, srv.URL, method, path, w.token)
				cells++
				if code != want {
					t.Errorf("%s %s as %s (in scope %v): %d, want %d", method, path, w.name, scoped, code, want)
				}
				if code == http.StatusOK && route != rt.Pattern {
					t.Errorf("%s %s reached %q, want %q", method, path, route, rt.Pattern)
				}
			}
		}
	}
	t.Logf("authorization matrix: %d routes x %d principals x 2 scopes = %d cells", len(routes), len(f.everyone()), cells)

	// The real handlers give the same denials for every GET route.
	for _, rt := range routes {
		if !strings.HasPrefix(rt.Pattern, "GET ") || rt.Rule.Public {
			continue
		}
		for _, scoped := range []bool{true, false} {
			values := map[string]string{}
			if rt.Rule.Locate != nil {
				values = examples[rt.Rule.Locate.Kind][map[bool]int{true: 0, false: 1}[scoped]]
			}
			_, path, _ := urlOf(rt.Pattern, values)
			for _, w := range f.everyone() {
				want := expected(rt.Pattern, rt.Rule, w.role, scoped)
				code, _ := call(t, f.base, "GET", path, w.token)
				if want != http.StatusOK && code != want {
					t.Errorf("real GET %s as %s (in scope %v): %d, want %d", path, w.name, scoped, code, want)
				}
				if want == http.StatusOK && (code == http.StatusUnauthorized || code == http.StatusForbidden ||
					(rt.Rule.Locate != nil && code == http.StatusNotFound)) {
					t.Errorf("real GET %s as %s (in scope %v): %d, the gate should have let it through", path, w.name, scoped, code)
				}
			}
		}
	}
}

func call(t *testing.T, base, method, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Route")
}
