package access

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestGate checks the router's answers for one route per case: the same
// table README.md gives.
func TestGate(t *testing.T) {
	var changes []string
	rt := NewRouter(Options{
		SignIn: "/signin",
		Authenticators: []Authenticator{AuthenticatorFunc(func(r *http.Request) (Principal, bool, error) {
			switch r.Header.Get("X-Who") {
			case "":
				return Principal{}, false, nil
			case "bad":
				return Principal{}, false, errors.New("wrong token")
			case "admin":
				return Principal{Account: "a", Role: Admin, Scope: Everything}, true, nil
			}
			return Principal{Account: "m", Role: Role(r.Header.Get("X-Who")), Scope: Scope{Orgs: []string{"muni"}}}, true, nil
		})},
		OnChange: func(r *http.Request, pattern string, status int) { changes = append(changes, pattern) },
	})
	loc := &Locator{Kind: "thing", Find: func(r *http.Request) (Place, error) {
		switch id := r.PathValue("id"); id {
		case "muni-1":
			return Place{Org: "muni"}, nil
		case "bank-1":
			return Place{Org: "bank"}, nil
		case "bad!":
			return Place{}, ErrInvalid
		case "boom":
			return Place{}, errors.New("store down")
		}
		return Place{}, ErrNotFound
	}}
	ok := func(w http.ResponseWriter, r *http.Request) {
		if _, has := FromContext(r.Context()); !has && r.URL.Path != "/open" {
			t.Error("handler reached without a principal")
		}
		if r.URL.Path == "/api/fail" {
			w.WriteHeader(http.StatusBadRequest)
		}
	}
	rt.HandleFunc("GET /open", Rule{Public: true}, ok)
	rt.HandleFunc("GET /page/{id}", Allow(Manager, Admin).At(loc), ok)
	rt.HandleFunc("POST /api/things/{id}", Allow(Manager, Admin).At(loc), ok)
	rt.HandleFunc("POST /api/fail", Rule{Any: true}, ok)
	for _, tc := range []struct {
		method, path, who string
		want              int
	}{
		{"GET", "/open", "", 200},
		{"GET", "/page/muni-1", "", http.StatusSeeOther},
		{"POST", "/api/things/muni-1", "", http.StatusUnauthorized},
		{"POST", "/api/things/muni-1", "bad", http.StatusUnauthorized},
		{"POST", "/api/things/muni-1", "viewer", http.StatusForbidden},
		{"POST", "/api/things/muni-1", "manager", 200},
		{"POST", "/api/things/bank-1", "manager", http.StatusNotFound},
		{"POST", "/api/things/none", "manager", http.StatusNotFound},
		{"POST", "/api/things/bank-1", "admin", 200},
		{"POST", "/api/things/bad!", "manager", http.StatusBadRequest},
		{"POST", "/api/things/boom", "manager", http.StatusInternalServerError},
		{"POST", "/api/fail", "manager", http.StatusBadRequest},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.who != "" {
			req.Header.Set("X-Who", tc.who)
		}
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s %s as %q: %d, want %d", tc.method, tc.path, tc.who, rec.Code, tc.want)
		}
	}
	// Audited: the two successful changes, not the refused or failed ones.
	if len(changes) != 2 || changes[0] != "POST /api/things/{id}" {
		t.Errorf("changes audited: %v", changes)
	}
	if n := len(rt.Routes()); n != 4 {
		t.Errorf("%d routes listed", n)
	}
}

func TestRuleCheck(t *testing.T) {
	for name, r := range map[string]Rule{
		"none":            {},
		"two":             {Public: true, Any: true},
		"unknown role":    {Roles: []Role{"boss"}},
		"public locates":  {Public: true, Locate: &Locator{Kind: "x", Find: func(*http.Request) (Place, error) { return Place{}, nil }}},
		"locator no kind": Allow(Admin).At(&Locator{}),
	} {
		if r.Check() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("a route without a rule was registered")
		}
	}()
	NewRouter(Options{}).HandleFunc("GET /x", Rule{}, func(http.ResponseWriter, *http.Request) {})
}
