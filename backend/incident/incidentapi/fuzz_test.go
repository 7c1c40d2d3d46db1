package incidentapi

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/incident"
	"github.com/semko/semko/backend/incident/sqlite"
)

// FuzzBodies posts arbitrary bodies, as JSON and as multipart, to the
// endpoints that decode them: the answer is 2xx or 4xx, never a 500 or a
// panic, and a 201 is an incident that reads back in scope.
func FuzzBodies(f *testing.F) {
	f.Add(uint8(0), []byte(`{"org":"shop","site":"mall","department":"retail","channel":"phone","type":"poor_service","remark_no":"1","description":"x"}`))
	f.Add(uint8(0), []byte(`{"org":"shop","site":"mall","department":"retail","channel":"web_form","type":"thanks","description":"<script>alert(1)</script>","customer_name":"\u0000"}`))
	f.Add(uint8(1), []byte(`{"to":"maria","comment":"go"}`))
	f.Add(uint8(2), []byte(`{"outcome":"done","called_back":true,"delay_reason":"other"}`))
	f.Add(uint8(3), []byte("--b\r\nContent-Disposition: form-data; name=\"org\"\r\n\r\nshop\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n\x89PNG\r\n--b--\r\n"))
	dir := f.TempDir()
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "incidents.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	files, err := incident.NewFiles(filepath.Join(dir, "files"), 64<<10)
	if err != nil {
		f.Fatal(err)
	}
	desk, err := incident.New(incident.Options{Store: store, Files: files})
	if err != nil {
		f.Fatal(err)
	}
	routes, err := Routes(Options{Desk: desk})
	if err != nil {
		f.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, r := range routes {
		mux.Handle(r.Pattern, r.Handler)
	}
	p := access.Principal{Account: "olga", Role: access.CustomerService, Scope: access.Scope{Orgs: []string{"shop"}}}
	ctx := access.WithPrincipal(context.Background(), p)
	seed, err := desk.Register(ctx, p, incident.Draft{Org: "shop", Site: "mall", Department: "retail", Channel: incident.ChannelPhone,
		Type: incident.TypeService, RemarkNo: "1", Description: "seed"})
	if err != nil {
		f.Fatal(err)
	}
	_ = seed
	paths := []string{"/api/v1/incidents", "/api/v1/incidents/1/pass", "/api/v1/incidents/1/close", "/api/v1/incidents", "/api/v1/incidents/1/attachments"}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		i := int(which) % len(paths)
		req := httptest.NewRequest("POST", paths[i], bytes.NewReader(body)).WithContext(ctx)
		if i >= 3 {
			req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %q: %d %s", req.URL.Path, body, w.Code, w.Body)
		}
		if w.Code == http.StatusCreated {
			l, err := desk.List(ctx, p, incident.Filter{Limit: 1})
			if err != nil || len(l) == 0 || l[0].Org != "shop" {
				t.Fatalf("created but not listed in scope: %v %+v", err, l)
			}
		}
	})
}
