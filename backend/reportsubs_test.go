package backend_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/semko/semko/backend/access"
)

// The subscription routes are in the backend's router with the staff rule
// (so TestAuthorizationMatrix asks them as every role), and the real
// handlers behind the real gate give each role and scope its exact answer.
func TestReportSubscriptionRoutes(t *testing.T) {
	f := newConsoleFixture(t, nil)
	want := []string{"GET /api/v1/report-subscriptions", "POST /api/v1/report-subscriptions", "DELETE /api/v1/report-subscriptions/{id}"}
	for _, rt := range f.app.Router().Routes() {
		if i := slices.Index(want, rt.Pattern); i >= 0 {
			if rt.Rule.Permits(access.Integrator) || !rt.Rule.Permits(access.Viewer) || rt.Rule.Public {
				t.Errorf("%s: rule %+v, want the staff roles", rt.Pattern, rt.Rule)
			}
			want = slices.Delete(want, i, i+1)
		}
	}
	if len(want) != 0 {
		t.Fatalf("routes missing: %v", want)
	}
	do := func(method, path, token, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, f.base+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	in := fmt.Sprintf(`{"org":%q,"period":"week","format":"csv","lang":"en","recipients":["m@example.org"]}`, f.orgIn)
	out := fmt.Sprintf(`{"org":%q,"period":"week","format":"csv","lang":"en","recipients":["m@example.org"]}`, f.orgOut)
	manager, viewer := f.tokens[access.Manager], f.tokens[access.Viewer]
	for _, c := range []struct {
		name, token, body string
		want              int
	}{
		{"anonymous", "", in, http.StatusUnauthorized},
		{"integrator", f.tokens[access.Integrator], in, http.StatusForbidden},
		{"manager, another organisation", manager, out, http.StatusNotFound},
		{"manager, unknown language", manager, strings.Replace(in, `"en"`, `"xx"`, 1), http.StatusBadRequest},
		{"manager, own organisation", manager, in, http.StatusCreated},
		{"viewer, own organisation", viewer, in, http.StatusCreated},
	} {
		if code, body := do("POST", "/api/v1/report-subscriptions", c.token, c.body); code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.want)
		}
	}
	code, body := do("GET", "/api/v1/report-subscriptions", manager, "")
	var mine []struct {
		ID      int64  `json:"id"`
		Account string `json:"account"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &mine) != nil || len(mine) != 1 || mine[0].Account != f.accountsOf[access.Manager] {
		t.Fatalf("manager's list: %d %s", code, body)
	}
	path := fmt.Sprintf("/api/v1/report-subscriptions/%d", mine[0].ID)
	if code, _ := do("DELETE", path, viewer, ""); code != http.StatusNotFound {
		t.Errorf("the viewer deleted the manager's subscription: %d", code)
	}
	if code, _ := do("DELETE", path, manager, ""); code != http.StatusNoContent {
		t.Errorf("delete: %d", code)
	}
	if code, body := do("GET", "/api/v1/report-subscriptions", viewer, ""); code != 200 || strings.Count(body, `"id"`) != 1 {
		t.Errorf("viewer's list: %d %s", code, body)
	}
}
