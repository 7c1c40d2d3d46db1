package web_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/account"
	"github.com/semko/semko/backend/account/sqlite"
	"github.com/semko/semko/backend/web"
)

const password = "correct horse battery"

type env struct {
	srv     *httptest.Server
	acc     *account.Service
	con     *web.Console
	metrics *prometheus.Registry
}

// newEnv runs the console alone over a real account store, with the
// accounts given (name -> role; scope the organisation "muni").
func newEnv(t *testing.T, accounts map[string]access.Role) *env {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "accounts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	reg := prometheus.NewRegistry()
	acc, err := account.New(account.Options{Store: store, BcryptCost: bcrypt.MinCost, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	for name, role := range accounts {
		if err := acc.Create(context.Background(), account.Account{Name: name, Role: role, Scope: access.Scope{Orgs: []string{"muni"}}}, password); err != nil {
			t.Fatal(err)
		}
	}
	router := access.NewRouter(access.Options{
		Authenticators: []access.Authenticator{acc.TokenAuthenticator(), acc.SessionAuthenticator()},
		SignIn:         "/signin",
	})
	con, err := web.New(web.Options{Router: router, Accounts: acc})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(web.Protect(router))
	t.Cleanup(srv.Close)
	return &env{srv: srv, acc: acc, con: con, metrics: reg}
}

// browser is an HTTP client with cookies that does not follow redirects
// and sends what a browser sends for a same-origin form.
type browser struct {
	t   *testing.T
	e   *env
	c   *http.Client
	jar *cookiejar.Jar
}

func (e *env) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, e: e, jar: jar, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *browser) do(method, path string, form url.Values, header map[string]string) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.srv.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

func (b *browser) signIn(name, pw string) *http.Response {
	b.t.Helper()
	resp, _ := b.do("POST", "/signin", url.Values{"name": {name}, "password": {pw}, "next": {"/account"}}, nil)
	return resp
}

func TestSignInOut(t *testing.T) {
	e := newEnv(t, map[string]access.Role{"tanya": access.Technician})
	b := e.browser(t)
	if resp, _ := b.do("GET", "/account", nil, nil); resp.StatusCode != http.StatusSeeOther ||
		resp.Header.Get("Location") != "/signin?next=%2Faccount" {
		t.Fatalf("anonymous page: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, page := b.do("GET", "/signin", nil, map[string]string{"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
	if resp.StatusCode != 200 || !strings.Contains(page, "Войти") {
		t.Fatalf("sign-in page in Russian: %d %s", resp.StatusCode, page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("CSP %q", csp)
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, " on") && strings.Contains(page, "onclick") {
		t.Fatal("inline script in the page")
	}
	if resp := b.signIn("tanya", "wrong password!"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	resp = b.signIn("tanya", password)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account" {
		t.Fatalf("sign-in: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == account.SessionCookie {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie %+v", cookie)
	}
	resp, page = b.do("GET", "/account", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, "tanya") {
		t.Fatalf("account page: %d", resp.StatusCode)
	}

	// A thief copies the cookie; after sign-out it opens nothing.
	thief := e.browser(t)
	u, _ := url.Parse(e.srv.URL)
	thief.jar.SetCookies(u, []*http.Cookie{{Name: account.SessionCookie, Value: cookie.Value}})
	if resp, _ := thief.do("GET", "/account", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("copied cookie before sign-out: %d", resp.StatusCode)
	}
	if resp, _ := b.do("POST", "/signout", url.Values{}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", resp.StatusCode)
	}
	if resp, _ := thief.do("GET", "/account", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("stolen cookie after sign-out: %d, want a redirect to sign in", resp.StatusCode)
	}
}

func TestCrossSitePostRefused(t *testing.T) {
	e := newEnv(t, map[string]access.Role{"tanya": access.Technician})
	b := e.browser(t)
	b.signIn("tanya", password)
	resp, _ := b.do("POST", "/account/tokens", url.Values{"name": {"evil"}}, map[string]string{"Sec-Fetch-Site": "cross-site"})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site POST: %d, want 403", resp.StatusCode)
	}
	resp, _ = b.do("POST", "/account/tokens", url.Values{"name": {"evil"}}, map[string]string{"Sec-Fetch-Site": "", "Origin": "https://evil.example"})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST from another origin: %d, want 403", resp.StatusCode)
	}
	if toks, _ := e.acc.Store().Tokens(context.Background(), "tanya"); len(toks) != 0 {
		t.Fatalf("a refused request saved a token: %+v", toks)
	}
}

func TestThrottleCounted(t *testing.T) {
	e := newEnv(t, map[string]access.Role{"tanya": access.Technician})
	b := e.browser(t)
	throttled := 0
	for range 1000 {
		if resp := b.signIn("tanya", "not the password"); resp.StatusCode == http.StatusTooManyRequests {
			throttled++
		}
	}
	if throttled < 990 {
		t.Fatalf("%d of 1000 wrong sign-ins throttled, want all but the first few", throttled)
	}
	// Throttled, even the right password is refused unchecked.
	if resp := b.signIn("tanya", password); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("right password while throttled: %d", resp.StatusCode)
	}
	got := testutil.ToFloat64(mustCounter(t, e.metrics, "throttled"))
	if got != float64(throttled+1) {
		t.Fatalf("semko_signin_total{result=throttled} = %v, want %d", got, throttled+1)
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, result string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "semko_signin_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == result {
				c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
				c.Add(m.GetCounter().GetValue())
				return c
			}
		}
	}
	t.Fatalf("no semko_signin_total{result=%q}", result)
	return nil
}

func TestOversizedFormRefused(t *testing.T) {
	e := newEnv(t, map[string]access.Role{"tanya": access.Technician})
	b := e.browser(t)
	b.signIn("tanya", password)
	resp, page := b.do("POST", "/account/tokens", url.Values{"name": {strings.Repeat("x", web.DefaultMaxForm+1)}}, nil)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(page, "too large") {
		t.Fatalf("oversized form: %d %s", resp.StatusCode, page)
	}
	if toks, _ := e.acc.Store().Tokens(context.Background(), "tanya"); len(toks) != 0 {
		t.Fatalf("half-saved: %+v", toks)
	}
}

func TestTokenShownOnceAndEscaped(t *testing.T) {
	e := newEnv(t, map[string]access.Role{"tanya": access.Technician})
	b := e.browser(t)
	b.signIn("tanya", password)
	resp, page := b.do("POST", "/account/tokens", url.Values{"name": {`<script>alert(1)</script>`}}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create token: %d", resp.StatusCode)
	}
	if strings.Contains(page, "<script>alert") || !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatal("token name not escaped")
	}
	i := strings.Index(page, account.TokenPrefix)
	if i < 0 {
		t.Fatal("secret not shown")
	}
	secret := page[i : i+len(account.TokenPrefix)+43]
	if _, again := b.do("GET", "/account", nil, nil); strings.Contains(again, secret) {
		t.Fatal("secret shown twice")
	}
	// The token works as a bearer token for the account's routes, and
	// stops when revoked.
	e.con.Router().HandleFunc("GET /api/v1/whoami", access.Rule{Any: true}, func(w http.ResponseWriter, r *http.Request) {
		p, _ := access.FromContext(r.Context())
		io.WriteString(w, p.Account+" "+string(p.Role))
	})
	api := &http.Client{}
	call := func() (int, string) {
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/whoami", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := api.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	if code, body := call(); code != 200 || body != "tanya technician" {
		t.Fatalf("token call: %d %q", code, body)
	}
	toks, _ := e.acc.Store().Tokens(context.Background(), "tanya")
	if len(toks) != 1 || toks[0].LastUsed.IsZero() {
		t.Fatalf("last used not recorded: %+v", toks)
	}
	if resp, _ := b.do("POST", "/account/tokens/"+toks[0].ID+"/revoke", url.Values{}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if code, _ := call(); code != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d", code)
	}
}

func TestPasswordChangeEndsSessions(t *testing.T) {
	e := newEnv(t, map[string]access.Role{"tanya": access.Technician})
	b1, b2 := e.browser(t), e.browser(t)
	b1.signIn("tanya", password)
	b2.signIn("tanya", password)
	resp, page := b1.do("POST", "/account/password", url.Values{"current": {password}, "new": {"short"}, "repeat": {"short"}}, nil)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "field-error") {
		t.Fatalf("short password: %d", resp.StatusCode)
	}
	resp, _ = b1.do("POST", "/account/password", url.Values{"current": {password}, "new": {"a much longer one"}, "repeat": {"a much longer one"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("change: %d", resp.StatusCode)
	}
	if resp, _ := b2.do("GET", "/account", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("other session after password change: %d, want sign-in again", resp.StatusCode)
	}
	if resp := b2.signIn("tanya", "a much longer one"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in with the new password: %d", resp.StatusCode)
	}
}

func TestCatalogsComplete(t *testing.T) {
	e := newEnv(t, nil)
	for _, lang := range []string{"bg", "ru"} {
		if missing := e.con.Missing(lang); len(missing) > 0 {
			t.Errorf("%s lacks %v", lang, missing)
		}
	}
}

func TestFromAcceptLanguage(t *testing.T) {
	for h, want := range map[string]string{
		"": "en", "bg": "bg", "ru-RU,ru;q=0.9": "ru", "de,bg;q=0.3,ru;q=0.5": "ru", "fr": "en", "en;q=0.1,bg;q=0.9": "bg",
	} {
		if got := web.FromAcceptLanguage(h); got != want {
			t.Errorf("%q -> %s, want %s", h, got, want)
		}
	}
}
