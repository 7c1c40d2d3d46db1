package delivery_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/report/delivery"
	"github.com/semko/semko/backend/report/delivery/sqlite"
)

// The subscription API keeps each account to its own subscriptions and
// its own scope; bad input is a 400 with the reason, and nothing else
// is stored. (Who may call it at all is the gate's, in
// backend.TestAuthorizationMatrix.)
func TestSubscriptionAPI(t *testing.T) {
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "reports.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	rejected := delivery.NewRejectedCounter()
	api := &delivery.API{Store: store, Rejected: rejected, Now: func() time.Time { return time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC) }}
	principals := map[string]access.Principal{
		"maria": {Account: "maria", Role: access.Manager, Scope: access.Scope{Orgs: []string{"bank"}}, Lang: "bg"},
		"ivan":  {Account: "ivan", Role: access.Manager, Scope: access.Scope{Orgs: []string{"bank"}}},
		"petya": {Account: "petya", Role: access.Viewer, Scope: access.Scope{Sites: []string{"b-north"}}},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /subs", api.List)
	mux.HandleFunc("POST /subs", api.Create)
	mux.HandleFunc("DELETE /subs/{id}", api.Delete)
	// The principal as the access gate would put it in the context.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := principals[r.Header.Get("X-Who")]
		mux.ServeHTTP(w, r.WithContext(access.WithPrincipal(r.Context(), p)))
	}))
	t.Cleanup(srv.Close)
	do := func(who, method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("X-Who", who)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	code, body := do("maria", "POST", "/subs", `{"org":"bank","period":"week","format":"pdf","recipients":["boss@bank.example"],"account":"ivan","scope":{"all":true}}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	var s delivery.Subscription
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	// Account and scope are the caller's, whatever the body said; the
	// language defaults to the account's.
	if s.ID == 0 || s.Account != "maria" || s.Scope.All || len(s.Scope.Orgs) != 1 || s.Lang != "bg" {
		t.Errorf("stored %+v", s)
	}
	if code, body := do("petya", "POST", "/subs", `{"org":"bank","site":"b-north","period":"month","format":"xlsx","lang":"en","recipients":["p@bank.example"]}`); code != http.StatusCreated {
		t.Errorf("a site's viewer subscribing to her site: %d %s", code, body)
	}

	for _, c := range []struct {
		who, body string
		want      int
		says      string
	}{
		{"maria", `{"org":"post","period":"week","format":"pdf","recipients":["a@b.example"]}`, 404, "no such"}, // another organisation
		{"petya", `{"org":"bank","period":"week","format":"pdf","recipients":["a@b.example"]}`, 404, "no such"}, // beyond her site
		{"maria", `{"period":"week","format":"pdf","recipients":["a@b.example"]}`, 400, "org is required"},      // no scope
		{"maria", `{"org":"bank","period":"day","format":"pdf","recipients":["a@b.example"]}`, 400, "period"},   // not a period
		{"maria", `{"org":"bank","period":"week","format":"doc","recipients":["a@b.example"]}`, 400, "format"},  // not a format
		{"maria", `{"org":"bank","period":"week","format":"pdf","lang":"xx","recipients":["a@b.example"]}`, 400, "xx"},
		{"maria", `{"org":"bank","period":"week","format":"pdf","recipients":["not an address"]}`, 400, "recipient"},
		{"maria", `{"org":"bank","period":"week","format":"pdf","recipients":[]}`, 400, "recipients"},
		{"maria", `{"org":"bank","period":"week","colour":"red"}`, 400, "unknown field"},
		{"maria", `not json`, 400, "JSON"},
	} {
		code, body := do(c.who, "POST", "/subs", c.body)
		if code != c.want || !strings.Contains(body, c.says) || strings.Contains(body, "post\"") {
			t.Errorf("%s %s: %d %s, want %d saying %q", c.who, c.body, code, body, c.want, c.says)
		}
	}
	for reason, want := range map[string]float64{"invalid": 6, "body": 2, "not_found": 2} {
		if n := testutil.ToFloat64(rejected.WithLabelValues(reason)); n != want {
			t.Errorf("%v rejections for %s counted, want %v", n, reason, want)
		}
	}

	list := func(who string) []delivery.Subscription {
		t.Helper()
		code, body := do(who, "GET", "/subs", "")
		var out []delivery.Subscription
		if code != 200 || json.Unmarshal([]byte(body), &out) != nil {
			t.Fatalf("list as %s: %d %s", who, code, body)
		}
		return out
	}
	if l := list("maria"); len(l) != 1 || l[0].ID != s.ID {
		t.Errorf("maria's list: %+v", l)
	}
	if l := list("ivan"); len(l) != 0 {
		t.Errorf("ivan sees others' subscriptions: %+v", l)
	}
	id := "/subs/" + strconv.FormatInt(s.ID, 10)
	if code, _ := do("ivan", "DELETE", id, ""); code != http.StatusNotFound {
		t.Errorf("ivan deleted maria's subscription: %d", code)
	}
	if code, _ := do("maria", "DELETE", "/subs/x1", ""); code != http.StatusNotFound {
		t.Errorf("delete x1: %d", code)
	}
	if code, body := do("maria", "DELETE", id, ""); code != http.StatusNoContent {
		t.Errorf("delete: %d %s", code, body)
	}
	if code, _ := do("maria", "DELETE", id, ""); code != http.StatusNotFound {
		t.Errorf("second delete: %d", code)
	}
	if l := list("maria"); len(l) != 0 {
		t.Errorf("after delete: %+v", l)
	}
	all, err := store.Subscriptions(t.Context())
	if err != nil || len(all) != 1 || all[0].Account != "petya" {
		t.Errorf("store holds %+v (%v), want petya's only", all, err)
	}
}
