package backend_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/web"
)

// session is a signed-in browser-like client of the real backend.
type session struct {
	t    *testing.T
	base string
	c    *http.Client
}

func (f *consoleFixture) session(t *testing.T, role access.Role) *session {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	s := &session{t: t, base: f.base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
	if code, _ := s.post("/signin", url.Values{"name": {f.accountsOf[role]}, "password": {f.passwords[role]}}); code != http.StatusSeeOther {
		t.Fatalf("sign in as %s: %d", role, code)
	}
	return s
}

func (s *session) do(req *http.Request) (int, string) {
	s.t.Helper()
	resp, err := s.c.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *session) get(path string) (int, string) {
	req, _ := http.NewRequest("GET", s.base+path, nil)
	return s.do(req)
}

func (s *session) post(path string, form url.Values) (int, string) {
	req, _ := http.NewRequest("POST", s.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin") // what a browser sends for the console's own forms
	return s.do(req)
}

const xss = `<script>alert("x")</script>`
const xssEscaped = `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;`

// TestConsoleAlertPages: the technician's list and page of an alert of
// its scope, acknowledging with a comment (script escaped on the page,
// kept as typed in the store), the silence form's validation with the
// error next to the field, and nothing half-saved by a refused form.
func TestConsoleAlertPages(t *testing.T) {
	f := newConsoleFixture(t, nil)
	tech := f.session(t, access.Technician)
	in, out := strconv.FormatInt(f.alertIn, 10), strconv.FormatInt(f.alertOut, 10)

	code, page := tech.get("/alerts")
	if code != 200 || !strings.Contains(page, `data-id="`+in+`"`) || strings.Contains(page, `data-id="`+out+`"`) {
		t.Fatalf("alert list not scoped: %d", code)
	}
	if code, _ := tech.get("/alerts/" + out); code != http.StatusNotFound {
		t.Fatalf("another organisation's alert page: %d", code)
	}
	if code, _ := tech.post("/alerts/"+out+"/ack", url.Values{"comment": {"mine now"}}); code != http.StatusNotFound {
		t.Fatalf("ack of another organisation's alert: %d", code)
	}

	// Oversized: 413 with a clear message, nothing saved.
	code, page = tech.post("/alerts/"+in+"/ack", url.Values{"comment": {strings.Repeat("x", web.DefaultMaxForm)}})
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(page, "too large") {
		t.Fatalf("oversized ack: %d", code)
	}
	// Too long for a comment (but within the form limit): 422 next to the field, nothing saved.
	code, page = tech.post("/alerts/"+in+"/ack", url.Values{"comment": {strings.Repeat("x", 2001)}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(page, "field-error") {
		t.Fatalf("long comment: %d", code)
	}
	if a, _, _ := f.app.Alerts().Get(context.Background(), f.alertIn); a.State != alert.StateFiring {
		t.Fatalf("a refused form changed the alert: %s", a.State)
	}

	if code, _ := tech.post("/alerts/"+in+"/ack", url.Values{"comment": {xss}}); code != http.StatusSeeOther {
		t.Fatalf("ack: %d", code)
	}
	code, page = tech.get("/alerts/" + in)
	if code != 200 || strings.Contains(page, xss) || !strings.Contains(page, xssEscaped) {
		t.Fatalf("comment not escaped on the alert page (%d)", code)
	}
	a, _, _ := f.app.Alerts().Get(context.Background(), f.alertIn)
	if a.State != alert.StateAcknowledged || a.AckedBy != f.accountsOf[access.Technician] || a.AckComment != xss {
		t.Fatalf("alert after ack: %s by %q comment %q", a.State, a.AckedBy, a.AckComment)
	}

	// Silence: bad hours and an empty reason come back next to their field.
	code, page = tech.post("/alerts/"+in+"/silence", url.Values{"hours": {"0"}, "reason": {"x"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(page, "1 to 336") {
		t.Fatalf("bad hours: %d", code)
	}
	if code, _ := tech.post("/alerts/"+in+"/silence", url.Values{"hours": {"2"}, "reason": {xss}}); code != http.StatusSeeOther {
		t.Fatalf("silence: %d", code)
	}
	var found bool
	for _, s := range f.app.Alerts().Silences() {
		if s.Comment == xss && s.Matchers[alert.LabelDevice] == f.devIn && s.CreatedBy == f.accountsOf[access.Technician] {
			found = true
		}
	}
	if !found {
		t.Fatalf("silence not saved for %s: %+v", f.devIn, f.app.Alerts().Silences())
	}

	// A viewer reads but may not act.
	viewer := f.session(t, access.Viewer)
	if code, page := viewer.get("/alerts/" + in); code != 200 || strings.Contains(page, `id="ack"`) || strings.Contains(page, "/resolve") {
		t.Fatalf("viewer's alert page: %d, forms shown: %v", code, strings.Contains(page, "/resolve"))
	}
	if code, _ := viewer.post("/alerts/"+in+"/resolve", url.Values{}); code != http.StatusForbidden {
		t.Fatalf("viewer resolves: %d", code)
	}

	// The audit log names who did what, from where.
	admin := f.session(t, access.Admin)
	code, page = admin.get("/admin/audit")
	if code != 200 || !strings.Contains(page, "POST /alerts/{id}/ack") || !strings.Contains(page, f.accountsOf[access.Technician]) {
		t.Fatalf("audit log: %d", code)
	}
}

// TestConsoleDevicePages: the device list is scoped and filters; an admin
// adds a device whose free text comes back escaped, with the error next to
// the field for a duplicate; a technician runs a self-test.
func TestConsoleDevicePages(t *testing.T) {
	f := newConsoleFixture(t, nil)
	mgr := f.session(t, access.Manager)
	code, page := mgr.get("/devices")
	if code != 200 || !strings.Contains(page, `data-id="`+f.devIn+`"`) || strings.Contains(page, `data-id="`+f.devOut+`"`) {
		t.Fatalf("device list not scoped: %d", code)
	}
	if code, page := mgr.get("/devices?q=" + f.devIn); code != 200 || strings.Count(page, `class="device-row"`) != 1 {
		t.Fatalf("search: %d, %d rows", code, strings.Count(page, `class="device-row"`))
	}
	if code, _ := mgr.get("/devices/" + f.devOut); code != http.StatusNotFound {
		t.Fatalf("another organisation's device: %d", code)
	}
	if code, _ := mgr.get("/fleet/add"); code != http.StatusForbidden {
		t.Fatalf("manager on the admin's page: %d", code)
	}

	admin := f.session(t, access.Admin)
	code, page = admin.post("/fleet/add", url.Values{"id": {"kp-7001"}, "model": {xss}, "serial": {xss}})
	if code != http.StatusCreated || !strings.Contains(page, `id="device-secret"`) {
		t.Fatalf("add device: %d", code)
	}
	code, page = admin.get("/devices/kp-7001")
	if code != 200 || strings.Contains(page, xss) || !strings.Contains(page, xssEscaped) {
		t.Fatalf("device page: %d, escaped %v", code, strings.Contains(page, xssEscaped))
	}
	code, page = admin.post("/fleet/add", url.Values{"id": {"kp-7001"}})
	if code != http.StatusConflict || !strings.Contains(page, "field-error") {
		t.Fatalf("duplicate device: %d", code)
	}
	code, page = admin.post("/fleet/add", url.Values{"id": {"kp-7002"}, "counter": {"no-such-counter"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(page, "field-error") {
		t.Fatalf("unknown counter: %d", code)
	}
	if _, err := f.app.Fleet().Device(context.Background(), "kp-7002"); err == nil {
		t.Fatal("a refused device was half-saved")
	}

	// Configuration overrides: each refusal comes back next to its field,
	// and nothing is saved until one is valid.
	for _, tc := range []struct{ id, override, field string }{
		{f.orgIn, `{"backlite": {"level": 70}}`, "error-override"},   // misspelt key
		{f.orgIn, `{"backlight": {"level": 500}}`, "error-override"}, // out of range
		{"no-such-org", `{"backlight": {"level": 70}}`, "error-id"},
	} {
		code, page := admin.post("/fleet/config", url.Values{"level": {"org"}, "id": {tc.id}, "override": {tc.override}})
		if code != http.StatusUnprocessableEntity || !strings.Contains(page, `id="`+tc.field+`"`) {
			t.Errorf("override %s %s: %d, want 422 with %s", tc.id, tc.override, code, tc.field)
		}
	}
	if o, err := f.app.Fleet().Override(context.Background(), "org", f.orgIn); err != nil || o != nil {
		t.Fatalf("a refused override was saved: %+v %v", o, err)
	}
	if code, _ := admin.post("/fleet/config", url.Values{"level": {"org"}, "id": {f.orgIn}, "override": {`{"backlight": {"level": 70}}`}}); code != http.StatusSeeOther {
		t.Fatalf("valid override: %d", code)
	}
	if code, page := admin.get("/fleet/config?level=org&id=" + f.orgIn); code != 200 || !strings.Contains(page, `&#34;level&#34;: 70`) {
		t.Fatalf("override read back: %d", code)
	}

	// Operators, services and counter assignments.
	counter := f.model.Orgs[0].Sites[0].Counters[0].ID
	if code, _ := admin.post("/fleet/operators", url.Values{"id": {"op-x"}, "name": {xss}, "org": {f.orgIn}}); code != http.StatusSeeOther {
		t.Fatalf("operator: %d", code)
	}
	if code, page := admin.post("/fleet/operators", url.Values{"id": {"op-y"}, "org": {"no-such-org"}}); code != http.StatusUnprocessableEntity || !strings.Contains(page, `id="error-operator"`) {
		t.Fatalf("operator of an unknown organisation: %d", code)
	}
	if code, _ := admin.post("/fleet/services", url.Values{"id": {"svc-x"}, "name": {"Passports"}}); code != http.StatusSeeOther {
		t.Fatalf("service: %d", code)
	}
	if code, page := admin.post("/fleet/counters/"+counter, url.Values{"operator": {"nobody"}, "service": {"svc-x"}}); code != http.StatusUnprocessableEntity ||
		!strings.Contains(page, `id="error-counter-`+counter+`"`) {
		t.Fatalf("unknown operator: %d", code)
	}
	if code, _ := admin.post("/fleet/counters/"+counter, url.Values{"operator": {"op-x"}, "service": {"svc-x"}}); code != http.StatusSeeOther {
		t.Fatalf("assign: %d", code)
	}
	cs, _ := f.app.Fleet().Counters(context.Background())
	for _, c := range cs {
		if c.ID == counter && (c.Operator != "op-x" || c.Service != "svc-x") {
			t.Fatalf("counter %+v", c)
		}
	}
	if code, page := admin.get("/fleet/counters"); code != 200 || !strings.Contains(page, `value="op-x"`) {
		t.Fatalf("counters page: %d", code)
	}

	tech := f.session(t, access.Technician)
	if code, _ := tech.post("/devices/"+f.devIn+"/selftest", url.Values{}); code != http.StatusSeeOther {
		t.Fatalf("self-test: %d", code)
	}
	if code, _ := tech.post("/devices/"+f.devOut+"/selftest", url.Values{}); code != http.StatusNotFound {
		t.Fatalf("self-test of another organisation's device: %d", code)
	}
}

// TestConsoleAccountsAdmin: an admin makes an account whose scope works at
// once, and a refused form is shown next to its field and saves nothing.
func TestConsoleAccountsAdmin(t *testing.T) {
	f := newConsoleFixture(t, nil)
	admin := f.session(t, access.Admin)
	code, page := admin.post("/admin/accounts", url.Values{"name": {"new-tech"}, "role": {"technician"}, "orgs": {f.orgOut}, "password": {"short"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(page, "field-error") {
		t.Fatalf("short password: %d", code)
	}
	if _, _, err := f.app.Accounts().Store().Account(context.Background(), "new-tech"); err == nil {
		t.Fatal("refused account saved")
	}
	code, _ = admin.post("/admin/accounts", url.Values{"name": {"new-tech"}, "role": {"technician"}, "orgs": {f.orgOut}, "password": {"long enough password"}})
	if code != http.StatusSeeOther {
		t.Fatalf("create: %d", code)
	}
	code, page = admin.get("/admin/accounts")
	if code != 200 || !strings.Contains(page, "new-tech") {
		t.Fatalf("accounts page: %d", code)
	}
	f.passwords["new"], f.accountsOf["new"] = "long enough password", "new-tech"
	other := f.session(t, "new")
	if code, _ := other.get("/devices/" + f.devOut); code != 200 {
		t.Fatalf("new account's own organisation: %d", code)
	}
	if code, _ := other.get("/devices/" + f.devIn); code != http.StatusNotFound {
		t.Fatalf("new account, other organisation: %d", code)
	}
	if code, _ := other.get("/admin/accounts"); code != http.StatusForbidden {
		t.Fatalf("technician on accounts: %d", code)
	}
}
