package deskpages_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/crypto/bcrypt"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/account"
	accountsqlite "github.com/semko/semko/backend/account/sqlite"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/incident"
	"github.com/semko/semko/backend/incident/sqlite"
	"github.com/semko/semko/backend/web"
	"github.com/semko/semko/backend/web/deskpages"
)

// alertBook is the alerts the form is pre-filled from (the real manager
// is used by the backend's browser test).
type alertBook map[int64]alert.Alert

func (b alertBook) Get(_ context.Context, id int64) (alert.Alert, []alert.Event, error) {
	a, ok := b[id]
	if !ok {
		return alert.Alert{}, nil, alert.ErrNotFound
	}
	return a, nil, nil
}

type env struct {
	srv    *httptest.Server
	desk   *incident.Desk
	clock  *clockwork.FakeClock
	files  string
	tokens map[string]string // account -> bearer token
}

// newEnv runs the console with the desk's pages over real SQLite stores:
// shop (sites mall, centre) and bank (site west); a shop manager, Customer
// Service of the shop, a viewer of the shop, a technician "tech" and
// Customer Service of the bank. Retail passes to "maria" or "tech"; 3
// hours on an always-open calendar; files at most 64 KiB.
func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	astore, err := accountsqlite.Open(ctx, filepath.Join(dir, "accounts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { astore.Close() })
	acc, err := account.New(account.Options{Store: astore, BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{tokens: map[string]string{}, clock: clockwork.NewFakeClockAt(time.Date(2026, 3, 3, 9, 0, 0, 0, time.UTC)), files: filepath.Join(dir, "files")}
	shop, bank := access.Scope{Orgs: []string{"shop"}}, access.Scope{Orgs: []string{"bank"}}
	for name, a := range map[string]account.Account{
		"ivan": {Role: access.Manager, Scope: shop}, "cs": {Role: access.CustomerService, Scope: shop},
		"viewer": {Role: access.Viewer, Scope: shop}, "tech": {Role: access.Technician, Scope: shop},
		"bankcs": {Role: access.CustomerService, Scope: bank},
	} {
		a.Name, a.Lang = name, "en"
		if err := acc.Create(ctx, a, "password-of-"+name); err != nil {
			t.Fatal(err)
		}
		if e.tokens[name], _, err = acc.NewToken(ctx, name, "test"); err != nil {
			t.Fatal(err)
		}
	}
	istore, err := sqlite.Open(ctx, filepath.Join(dir, "incidents.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { istore.Close() })
	files, err := incident.NewFiles(e.files, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	sites := []deskpages.Place{{Org: "shop", Site: "mall", Name: "Mall"}, {Org: "shop", Site: "centre", Name: "Centre"}, {Org: "bank", Site: "west", Name: "West"}}
	e.desk, err = incident.New(incident.Options{
		Config: incident.Config{MaxAttachment: 64 << 10, MinScanPixels: 600,
			Departments: []incident.Department{{Name: "retail", Title: "Retail shop", Accounts: []string{"maria", "tech"}, MaxTime: 3 * time.Hour}}},
		Store: istore, Files: files, Clock: e.clock,
		Known: func(org, site string) bool {
			for _, s := range sites {
				if s.Org == org && s.Site == site {
					return true
				}
			}
			return false
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	router := access.NewRouter(access.Options{Authenticators: []access.Authenticator{acc.TokenAuthenticator(), acc.SessionAuthenticator()}, SignIn: "/signin"})
	con, err := web.New(web.Options{Router: router, Accounts: acc})
	if err != nil {
		t.Fatal(err)
	}
	alerts := alertBook{
		7: {ID: 7, Kind: alert.KindNegativeVote, Subject: alert.Subject{Org: "shop", Site: "mall", Counter: "c1"}, Message: "A customer pressed 'bad' at counter 1",
			Details: map[string]string{"counter_name": "Counter 1", "score": "1"}, LastSeen: e.clock.Now()},
		8: {ID: 8, Kind: alert.KindNegativeVote, Subject: alert.Subject{Org: "bank", Site: "west"}, Message: "bank vote"},
	}
	err = deskpages.Register(con, deskpages.Options{Desk: e.desk, Sites: func() []deskpages.Place { return sites }, Alerts: alerts,
		FollowUp: func(_ context.Context, id int64) (incident.Draft, error) {
			if id != 3 {
				return incident.Draft{}, incident.ErrNotFound
			}
			return incident.Draft{Org: "shop", Site: "centre", Department: "retail", Channel: incident.ChannelNPSDetractor, Type: incident.TypeService,
				CustomerContact: "anna@example.org", Description: "NPS 2/10; reasons: speed"}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(web.Protect(router))
	t.Cleanup(e.srv.Close)
	return e
}

// do sends a request as the account (bearer token); form posts look like
// a browser's same-origin form.
func (e *env) do(t *testing.T, who, method, path, ctype string, body io.Reader) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.tokens[who])
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), resp.Header.Get("Location")
}

func (e *env) post(t *testing.T, who, path string, form url.Values) (int, string, string) {
	t.Helper()
	return e.do(t, who, http.MethodPost, path, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
}

// register posts the register form as multipart, files last as a browser
// sends them (in the form's order).
func (e *env) register(t *testing.T, who string, fields map[string]string, files map[string][]byte) (int, string, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, k := range []string{"org", "site", "department", "channel", "type", "customer_name", "customer_contact", "remark_no", "description"} {
		if v, ok := fields[k]; ok {
			_ = mw.WriteField(k, v)
		}
	}
	for name, data := range files {
		w, _ := mw.CreateFormFile("file", name)
		_, _ = w.Write(data)
	}
	_ = mw.Close()
	return e.do(t, who, http.MethodPost, "/incidents", mw.FormDataContentType(), &b)
}

func scan(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func (e *env) storedFiles(t *testing.T) int {
	t.Helper()
	l, err := os.ReadDir(e.files)
	if err != nil {
		t.Fatal(err)
	}
	return len(l)
}

func (e *env) count(t *testing.T) int {
	t.Helper()
	l, err := e.desk.List(context.Background(), access.Principal{Scope: access.Everything}, incident.Filter{Scope: access.Everything})
	if err != nil {
		t.Fatal(err)
	}
	return len(l)
}

var idIn = regexp.MustCompile(`^/incidents/(\d+)\?done=`)

func good() map[string]string {
	return map[string]string{"org": "shop", "site": "mall", "department": "retail", "channel": "in_person", "type": "product_quality",
		"customer_name": "Мария Петрова", "customer_contact": "+359 888 123", "remark_no": "R-17", "description": "The kettle leaks."}
}

func TestRegisterAndLifeCycle(t *testing.T) {
	e := newEnv(t)
	code, _, loc := e.register(t, "ivan", good(), map[string][]byte{"receipt.png": scan(t, 700, 900)})
	m := idIn.FindStringSubmatch(loc)
	if code != http.StatusSeeOther || m == nil {
		t.Fatalf("register: %d to %q", code, loc)
	}
	id := m[1]
	code, page, _ := e.do(t, "cs", http.MethodGet, "/incidents/"+id, "", nil)
	for _, want := range []string{"The kettle leaks.", "R-17", "Мария Петрова", "receipt.png", "700×900", `<img src="/api/v1/incidents/` + id + `/attachments/`, "2026-03-03 12:00 UTC", `id="pass-form"`} {
		if code != http.StatusOK || !strings.Contains(page, want) {
			t.Fatalf("incident page %d lacks %q:\n%s", code, want, page)
		}
	}
	// The list shows it with its deadline; the filters narrow it.
	for q, want := range map[string]bool{"": true, "?type=product_quality": true, "?type=thanks": false, "?site=centre": false,
		"?site=mall&department=retail": true, "?state=closed": false, "?state=registered": true} {
		_, list, _ := e.do(t, "cs", http.MethodGet, "/incidents"+q, "", nil)
		if got := strings.Contains(list, `data-id="`+id+`"`); got != want {
			t.Errorf("list%s shows the incident: %v, want %v", q, got, want)
		}
	}
	// Pass on without a comment: the desk's interaction error next to the field, nothing changed.
	code, page, _ = e.post(t, "cs", "/incidents/"+id+"/pass", url.Values{"to": {"tech"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(page, `id="err-pass-comment"`) || !strings.Contains(page, "a comment is required") {
		t.Fatalf("pass on without a comment: %d\n%s", code, page)
	}
	if in, _ := e.desk.Get(context.Background(), access.Principal{Scope: access.Everything}, parse(id)); in.State != incident.StateRegistered {
		t.Fatalf("refused pass-on changed the incident: %+v", in)
	}
	if code, _, loc = e.post(t, "cs", "/incidents/"+id+"/pass", url.Values{"to": {"tech"}, "comment": {"Please call her today"}}); code != http.StatusSeeOther || loc != "/incidents/"+id+"?done=incident_passed" {
		t.Fatalf("pass on: %d to %q", code, loc)
	}
	// The technician it was passed to updates and closes it; the viewer may not.
	if code, _, _ = e.post(t, "viewer", "/incidents/"+id+"/update", url.Values{"comment": {"x"}}); code != http.StatusForbidden {
		t.Fatalf("viewer update: %d, want 403", code)
	}
	if code, _, _ = e.post(t, "tech", "/incidents/"+id+"/update", url.Values{"comment": {"Customer called, comes tomorrow"}}); code != http.StatusSeeOther {
		t.Fatalf("update: %d", code)
	}
	code, page, _ = e.post(t, "tech", "/incidents/"+id+"/close", url.Values{"called_back": {"1"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(page, `id="err-outcome"`) {
		t.Fatalf("close without outcome: %d\n%s", code, page)
	}
	// Late: the deadline passed on the clock; the page marks it and asks why.
	e.clock.Advance(4 * time.Hour)
	if n, err := e.desk.CheckDeadlines(context.Background()); n != 1 || err != nil {
		t.Fatalf("deadline check marked %d, %v", n, err)
	}
	_, page, _ = e.do(t, "tech", http.MethodGet, "/incidents/"+id, "", nil)
	if !strings.Contains(page, "overdue-tag") || !strings.Contains(page, `id="delay_reason"`) {
		t.Fatalf("overdue incident page lacks the mark or the reason:\n%s", page)
	}
	code, page, _ = e.post(t, "tech", "/incidents/"+id+"/close", url.Values{"outcome": {"Goods exchanged"}, "called_back": {"1"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(page, `id="err-delay_reason"`) || !strings.Contains(page, "Goods exchanged") {
		t.Fatalf("late close without a reason: %d (the outcome typed must stay)\n%s", code, page)
	}
	if code, _, _ = e.post(t, "tech", "/incidents/"+id+"/close", url.Values{"outcome": {"Goods exchanged"}, "called_back": {"1"}, "delay_reason": {"waiting_for_customer"}}); code != http.StatusSeeOther {
		t.Fatalf("close: %d", code)
	}
	in, _ := e.desk.Get(context.Background(), access.Principal{Scope: access.Everything}, parse(id))
	if in.State != incident.StateClosed || !in.CalledBack || in.Outcome != "Goods exchanged" || in.DelayReason != "waiting_for_customer" {
		t.Fatalf("closed incident %+v", in)
	}
	_, page, _ = e.do(t, "cs", http.MethodGet, "/incidents/"+id, "", nil)
	for _, want := range []string{"Goods exchanged", `id="called-back">made`, "waiting for the customer", `id="reopen-form"`, "Customer called, comes tomorrow", "deadline missed"} {
		if !strings.Contains(page, want) {
			t.Fatalf("closed incident page lacks %q:\n%s", want, page)
		}
	}
	if code, _, _ = e.post(t, "cs", "/incidents/"+id+"/reopen", url.Values{"comment": {"She came back: leaks again"}}); code != http.StatusSeeOther {
		t.Fatalf("reopen: %d", code)
	}
	if code, _, _ = e.post(t, "cs", "/incidents/"+id+"/close", url.Values{"outcome": {"x"}, "called_back": {"1"}, "delay_reason": {"other"}}); code != http.StatusSeeOther {
		t.Fatalf("close after reopening: %d", code)
	}
	// A closed incident takes no update: 409 and the page says why.
	if code, page, _ = e.post(t, "cs", "/incidents/"+id+"/update", url.Values{"comment": {"late note"}}); code != http.StatusConflict || !strings.Contains(page, "page-error") {
		t.Fatalf("update of a closed incident: %d", code)
	}
}

func parse(s string) int64 {
	var n int64
	_, _ = fmt.Sscan(s, &n)
	return n
}

// TestRefusals: every refusal shows the form again with the problem next
// to its field and what was typed, and keeps nothing: no incident, no file.
func TestRefusals(t *testing.T) {
	e := newEnv(t)
	huge := append(scan(t, 700, 900), make([]byte, 70<<10)...)
	cases := []struct {
		name   string
		change map[string]string
		files  map[string][]byte
		status int
		field  string
		text   string
	}{
		{"no remark number", map[string]string{"remark_no": ""}, map[string][]byte{"a.png": scan(t, 700, 900)}, 422, "err-remark_no", "remark"},
		{"illegible name", map[string]string{"customer_name": "??"}, map[string][]byte{"a.png": scan(t, 700, 900)}, 422, "err-customer_name", "cannot be read"},
		{"no description", map[string]string{"description": " "}, nil, 422, "err-description", "a comment is required"},
		{"blurred scan", nil, map[string][]byte{"small.png": scan(t, 300, 400)}, 422, "err-attachments", "small.png is 300x400 pixels"},
		{"huge file", nil, map[string][]byte{"huge.png": huge}, 413, "err-attachments", "larger than 64 KiB"},
		{"wrong type", nil, map[string][]byte{"virus.exe": []byte("MZ\x90\x00 this is not a scan")}, 415, "err-attachments", "Only PNG, JPEG, GIF and PDF"},
		{"site of another organisation", map[string]string{"site": "west"}, nil, 422, "err-site", "no such site"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := good()
			f["customer_contact"] = "<b>bold</b>"
			for k, v := range c.change {
				f[k] = v
			}
			code, page, _ := e.register(t, "ivan", f, c.files)
			if code != c.status || !strings.Contains(page, `id="`+c.field+`"`) || !strings.Contains(page, c.text) {
				t.Fatalf("%d, want %d with %s saying %q:\n%s", code, c.status, c.field, c.text, page)
			}
			if !strings.Contains(page, `value="&lt;b&gt;bold&lt;/b&gt;"`) {
				t.Errorf("the form lost or did not escape what was typed")
			}
			if n := e.count(t); n != 0 {
				t.Fatalf("%d incidents stored after a refusal", n)
			}
			if n := e.storedFiles(t); n != 0 {
				t.Fatalf("%d files kept after a refusal", n)
			}
		})
	}
}

// TestEscapingAndScope: script in every text field comes back as text;
// another organisation's incident is 404 for pages and forms alike.
func TestEscapingAndScope(t *testing.T) {
	e := newEnv(t)
	x := `<script>alert(1)</script>`
	f := good()
	f["customer_contact"], f["remark_no"], f["description"] = x, x, x+"\n<img src=x onerror=alert(2)>"
	code, _, loc := e.register(t, "cs", f, map[string][]byte{`<script>.png`: scan(t, 700, 900)})
	m := idIn.FindStringSubmatch(loc)
	if code != http.StatusSeeOther || m == nil {
		t.Fatalf("register: %d", code)
	}
	id := m[1]
	e.post(t, "cs", "/incidents/"+id+"/pass", url.Values{"to": {"maria"}, "comment": {x}})
	e.post(t, "cs", "/incidents/"+id+"/update", url.Values{"comment": {x}})
	for _, path := range []string{"/incidents/" + id, "/incidents", "/"} {
		_, page, _ := e.do(t, "cs", http.MethodGet, path, "", nil)
		if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img src=x") {
			t.Fatalf("%s carries the script unescaped", path)
		}
		if !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Fatalf("%s does not show the text escaped:\n%s", path, page)
		}
	}
	for _, c := range []struct{ method, path string }{{"GET", "/incidents/" + id}, {"POST", "/incidents/" + id + "/update"}, {"POST", "/incidents/" + id + "/close"}} {
		var code int
		if c.method == "GET" {
			code, _, _ = e.do(t, "bankcs", c.method, c.path, "", nil)
		} else {
			code, _, _ = e.post(t, "bankcs", c.path, url.Values{"comment": {"mine now"}, "outcome": {"x"}})
		}
		if code != http.StatusNotFound {
			t.Errorf("bank's Customer Service %s %s: %d, want 404", c.method, c.path, code)
		}
	}
	if _, list, _ := e.do(t, "bankcs", "GET", "/incidents?state=all", "", nil); strings.Contains(list, `data-id="`+id+`"`) {
		t.Errorf("another organisation's list shows the incident")
	}
	// A cross-site form post is refused before the desk sees it.
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/incidents/"+id+"/update", strings.NewReader("comment=forged"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Authorization", "Bearer "+e.tokens["cs"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	trail, _ := e.desk.Trail(context.Background(), access.Principal{Scope: access.Everything}, parse(id))
	if resp.StatusCode != http.StatusForbidden || strings.Contains(fmt.Sprint(trail), "forged") {
		t.Fatalf("cross-site post: %d, trail %+v", resp.StatusCode, trail)
	}
}

// TestPrefillAndHome: one click from a negative-vote alert or an NPS
// follow-up opens the form pre-filled (out of scope: 404); the home page
// of Customer Service lists open incidents, nearest deadline first.
func TestPrefillAndHome(t *testing.T) {
	e := newEnv(t)
	code, page, _ := e.do(t, "cs", "GET", "/incidents/new?alert=7", "", nil)
	for _, want := range []string{`name="source_alert" value="7"`, `<option value="keypad_negative" selected>`, "pressed &#39;bad&#39; at counter 1", "counter name: Counter 1", `<option value="mall" selected>`} {
		if code != http.StatusOK || !strings.Contains(page, want) {
			t.Fatalf("form from alert 7 (%d) lacks %q:\n%s", code, want, page)
		}
	}
	code, page, _ = e.do(t, "cs", "GET", "/incidents/new?followup=3", "", nil)
	for _, want := range []string{`<option value="nps_detractor" selected>`, "NPS 2/10; reasons: speed", `value="anna@example.org"`, `<option value="centre" selected>`} {
		if code != http.StatusOK || !strings.Contains(page, want) {
			t.Fatalf("form from follow-up 3 (%d) lacks %q:\n%s", code, want, page)
		}
	}
	for _, path := range []string{"/incidents/new?alert=8", "/incidents/new?alert=99", "/incidents/new?followup=4"} {
		if code, _, _ := e.do(t, "cs", "GET", path, "", nil); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, code)
		}
	}
	if code, _, _ := e.do(t, "viewer", "GET", "/incidents/new", "", nil); code != http.StatusForbidden {
		t.Errorf("viewer opens the form: %d, want 403", code)
	}
	// Two incidents: the later registered has the nearer deadline? No: the
	// first one is passed on later with a fresh deadline, so the second
	// comes first on the home page.
	reg := func(desc string) string {
		f := good()
		f["description"] = desc
		_, _, loc := e.register(t, "ivan", f, map[string][]byte{"a.png": scan(t, 700, 900)})
		return idIn.FindStringSubmatch(loc)[1]
	}
	first := reg("first")
	e.clock.Advance(time.Hour)
	second := reg("second")
	e.clock.Advance(time.Hour)
	e.post(t, "cs", "/incidents/"+first+"/pass", url.Values{"to": {"maria"}, "comment": {"go"}})
	_, home, _ := e.do(t, "cs", "GET", "/", "", nil)
	i, j := strings.Index(home, `data-id="`+second+`"`), strings.Index(home, `data-id="`+first+`"`)
	if i < 0 || j < 0 || i > j || !strings.Contains(home, "home-incident-list") {
		t.Fatalf("home of Customer Service: second at %d, first at %d:\n%s", i, j, home)
	}
}
