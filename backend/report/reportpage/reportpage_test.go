package reportpage

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/account"
	"github.com/semko/semko/backend/account/sqlite"
	"github.com/semko/semko/backend/report"
	delsqlite "github.com/semko/semko/backend/report/delivery/sqlite"
	"github.com/semko/semko/backend/web"
	"github.com/semko/semko/internal/influxdb"
	"github.com/semko/semko/internal/influxlocal"
)

// The page offers only the caller's organisations and sites, and its
// download answers with the report, or 404 outside the scope.
func TestReportsPage(t *testing.T) {
	ctx := context.Background()
	influx := influxlocal.StartForTest(t)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	var lines []string
	for i, org := range []string{"bank", "bank", "bank", "post"} {
		lines = append(lines, fmt.Sprintf(`vote,channel=keypad,counter=c%d,device=kp-%d,operator=op-1,org=%s,scale=csat5,service=cash,site=%s-main score=5i,satisfied=1i,negative=0i,valid="true" %d`,
			i, i, org, org, now.Add(-time.Duration(i+1)*time.Hour).UnixNano()))
	}
	resp, err := http.Post(influx.URL()+"/write?db=semko", "text/plain", strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	db, err := influxdb.New(influxdb.Options{URL: influx.URL(), Bucket: "semko"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)

	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "accounts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	acc, err := account.New(account.Options{Store: store, BcryptCost: bcrypt.MinCost, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := acc.Create(ctx, account.Account{Name: "maria", Role: access.Manager, Scope: access.Scope{Orgs: []string{"bank"}}, Lang: "bg"},
		"correct horse battery"); err != nil {
		t.Fatal(err)
	}
	token, _, err := acc.NewToken(ctx, "maria", "test")
	if err != nil {
		t.Fatal(err)
	}
	router := access.NewRouter(access.Options{Authenticators: []access.Authenticator{acc.TokenAuthenticator(), acc.SessionAuthenticator()}, SignIn: "/signin"})
	con, err := web.New(web.Options{Router: router, Accounts: acc})
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return now }
	h := &report.Handler{Builder: &report.Builder{DB: db, Now: clock}}
	subs, err := delsqlite.Open(ctx, filepath.Join(t.TempDir(), "reports.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = subs.Close() })
	err = Register(Options{Console: con, Reports: h, Now: clock, Subscriptions: subs, Places: func() []Place {
		return []Place{{Org: "bank", OrgName: "Банка"}, {Org: "post", OrgName: "Поща"},
			{Org: "bank", OrgName: "Банка", Site: "bank-main", SiteName: "Централен клон"}, {Org: "post", OrgName: "Поща", Site: "post-main", SiteName: "Пощата"}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(web.Protect(router))
	t.Cleanup(srv.Close)
	get := func(path string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	resp, body := get("/reports")
	if resp.StatusCode != 200 || !strings.Contains(body, `value="bank/bank-main"`) || !strings.Contains(body, "Централен клон") ||
		strings.Contains(body, `value="post`) || strings.Contains(body, "Поща") || !strings.Contains(body, "Изтегляне") {
		t.Fatalf("form: %d\n%s", resp.StatusCode, body)
	}
	if dir := os.Getenv("SEMKO_REPORTPAGE_HTML"); dir != "" { // to look at it in a browser
		_ = os.WriteFile(filepath.Join(dir, "reports.html"), []byte(body), 0o644)
	}
	resp, body = get("/reports/download?place=bank&period=week&date=2026-11-26&format=csv&lang=en")
	if resp.StatusCode != 200 || !strings.Contains(body, "Votes,3") || strings.Contains(body, "post") {
		t.Errorf("download: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp, _ = get("/reports/download?place=bank/bank-main&period=today&date=2026-11-26&format=pdf")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pdf" {
		t.Errorf("pdf download: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Another organisation's site named under one's own organisation is
	// read as bank's (it has none of it): an empty report, nothing of post.
	if resp, body := get("/reports/download?place=bank/post-main&format=csv&period=week&date=2026-11-26"); resp.StatusCode != 200 ||
		!strings.Contains(body, "Гласове,0\n") {
		t.Errorf("bank/post-main: %d\n%s", resp.StatusCode, body)
	}
	for _, q := range []string{"place=post&format=pdf", "place=post/post-main&format=csv"} {
		if resp, body := get("/reports/download?" + q); resp.StatusCode != 404 || strings.Contains(body, "Поща") {
			t.Errorf("%s: %d %s, want 404", q, resp.StatusCode, body)
		}
	}
	if resp, body := get("/reports/download?place=bank&lang=xx"); resp.StatusCode != 400 {
		t.Errorf("unknown language: %d %s", resp.StatusCode, body)
	}

	// Scheduled reports: add one, see it listed, refuse bad ones, delete.
	post := func(path string, form url.Values) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	form := url.Values{"place": {"bank/bank-main"}, "period": {"month"}, "format": {"xlsx"}, "lang": {"ru"}, "recipients": {"boss@bank.example, deputy@bank.example"}}
	if resp, body := post("/reports/subscriptions", form); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("subscribe: %d %s", resp.StatusCode, body)
	}
	mine, err := subs.Subscriptions(ctx)
	if err != nil || len(mine) != 1 || mine[0].Account != "maria" || mine[0].Site != "bank-main" || len(mine[0].Recipients) != 2 {
		t.Fatalf("stored %+v %v", mine, err)
	}
	if _, body := get("/reports"); !strings.Contains(body, "deputy@bank.example") || !strings.Contains(body, fmt.Sprintf(`action="/reports/subscriptions/%d/delete"`, mine[0].ID)) {
		t.Errorf("the subscription is not listed:\n%s", body)
	}
	bad := url.Values{"place": {"bank"}, "period": {"week"}, "format": {"pdf"}, "recipients": {"nobody"}}
	if resp, body := post("/reports/subscriptions", bad); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "nobody") {
		t.Errorf("bad recipient: %d\n%s", resp.StatusCode, body)
	}
	bad = url.Values{"place": {"post"}, "period": {"week"}, "format": {"pdf"}, "recipients": {"a@post.example"}}
	if resp, body := post("/reports/subscriptions", bad); resp.StatusCode != http.StatusNotFound || strings.Contains(body, "Поща") {
		t.Errorf("another organisation: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := post("/reports/subscriptions/999/delete", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("delete of none: %d", resp.StatusCode)
	}
	if resp, body := post(fmt.Sprintf("/reports/subscriptions/%d/delete", mine[0].ID), nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("delete: %d %s", resp.StatusCode, body)
	}
	if left, _ := subs.Subscriptions(ctx); len(left) != 0 {
		t.Errorf("left after delete: %+v", left)
	}
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
