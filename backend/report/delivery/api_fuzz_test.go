package delivery_test

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/report/delivery"
	"github.com/semko/semko/backend/report/delivery/sqlite"
)

// FuzzSubscriptionBody feeds bodies to POST: never a panic or a 500, and
// whatever is stored is the caller's, inside the caller's scope.
func FuzzSubscriptionBody(f *testing.F) {
	for _, s := range []string{
		`{"org":"bank","period":"week","format":"pdf","recipients":["a@bank.example"]}`,
		`{"org":"bank","site":"b-north","operator":"op-1","service":"cash","period":"quarter","format":"xlsx","lang":"ru","recipients":["a@b.example","c@d.example"]}`,
		`{"org":"post","period":"week","format":"pdf","recipients":["a@b.example"]}`,
		`{"org":"bank","period":"week","format":"pdf","recipients":["a@b.example"],"scope":{"all":true},"account":"root","id":7}`,
		`{"org":"bank\n","period":"month","format":"csv","recipients":["x"]}`,
		`{"recipients":null}`, `[]`, `{`, ``,
	} {
		f.Add(s)
	}
	store, err := sqlite.Open(f.Context(), filepath.Join(f.TempDir(), "reports.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = store.Close() })
	api := &delivery.API{Store: store}
	who := access.Principal{Account: "maria", Role: access.Manager, Scope: access.Scope{Orgs: []string{"bank"}}}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		req = req.WithContext(access.WithPrincipal(req.Context(), who))
		w := httptest.NewRecorder()
		api.Create(w, req)
		switch w.Code {
		case http.StatusCreated, http.StatusBadRequest, http.StatusNotFound:
		default:
			t.Fatalf("%q: %d %s", body, w.Code, w.Body)
		}
		all, err := store.Subscriptions(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range all {
			if s.Account != "maria" || s.Scope.All || s.Org != "bank" {
				t.Fatalf("%q stored %+v", body, s)
			}
			_ = store.Unsubscribe(t.Context(), s.ID)
		}
	})
}
