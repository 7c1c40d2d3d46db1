package fleetapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/fleet/fleetapi"
	"github.com/semko/semko/backend/fleet/fleetdb"
	"github.com/semko/semko/backend/fleet/live"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/fleet/registry"
)

const fleetYAML = `
organisations:
  - id: acme
    timezone: UTC
    config: {vote_window_s: 25}
    sites:
      - id: centre
        counters: [{id: c1, device: kp-1}, {id: c2}]
  - id: other
    timezone: UTC
    sites: [{id: far, counters: [{id: f1, device: kp-9}]}]
devices:
  - {id: kp-1, secret_hash: "sha256$00$0000000000000000000000000000000000000000000000000000000000000000"}
  - {id: kp-9, secret_hash: "sha256$00$0000000000000000000000000000000000000000000000000000000000000000"}
`

func newServer(t testing.TB, live func() []live.DeviceState) (*httptest.Server, *fleetdb.DB) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(file, []byte(fleetYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := fleetdb.Open(context.Background(), fleetdb.Options{Path: filepath.Join(dir, "fleet.db"), HashSecret: broker.HashSecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.ApplyFile(context.Background(), file, false); err != nil {
		t.Fatal(err)
	}
	// Every request is the admin's here; scopes are tested by the
	// backend's authorization matrix.
	admin := access.AuthenticatorFunc(func(*http.Request) (access.Principal, bool, error) {
		return access.Principal{Account: "test", Role: access.Admin, Scope: access.Everything}, true, nil
	})
	mux := access.NewRouter(access.Options{Authenticators: []access.Authenticator{admin}})
	for _, r := range fleetapi.Routes(fleetapi.Options{DB: db, Live: live}) {
		mux.Handle(r.Pattern, r.Rule, r.Handler)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, db
}

func call(t testing.TB, srv *httptest.Server, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func TestRoutes(t *testing.T) {
	var applied string
	srv, db := newServer(t, func() []live.DeviceState {
		return []live.DeviceState{{Device: "kp-1", Online: true, ConfigVersion: applied}}
	})
	desired, err := db.Current().Config("kp-1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"list", "GET", "/api/v1/fleet/devices", "", 200, `"in_sync": false`},
		{"config pending", "GET", "/api/v1/fleet/devices/kp-1/config", "", 200, `"desired": "` + desired.Version + `"`},
		{"unmanaged device", "GET", "/api/v1/fleet/devices/kp-9/config", "", 200, `"managed": false`},
		{"unknown device", "GET", "/api/v1/fleet/devices/kp-5", "", 404, "not found"},
		{"add", "POST", "/api/v1/fleet/devices", `{"id":"kp-2","counter":"c2"}`, 201, `"secret"`},
		{"add again", "POST", "/api/v1/fleet/devices", `{"id":"kp-2"}`, 409, "already exists"},
		{"add typo", "POST", "/api/v1/fleet/devices", `{"id":"kp-3","countr":"c2"}`, 400, "unknown field"},
		{"add bad json", "POST", "/api/v1/fleet/devices", `{"id":`, 400, "decode body"},
		{"move", "PATCH", "/api/v1/fleet/devices/kp-2", `{"counter":"c1"}`, 200, `"counter": "c1"`},
		{"move to unknown", "PATCH", "/api/v1/fleet/devices/kp-2", `{"counter":"zz"}`, 404, `counter \"zz\"`},
		{"bad state", "PATCH", "/api/v1/fleet/devices/kp-2", `{"state":"asleep"}`, 422, "neither"},
		{"retire", "DELETE", "/api/v1/fleet/devices/kp-1", "", 200, `"state": "retired"`},
		{"config of retired", "GET", "/api/v1/fleet/devices/kp-1/config", "", 404, "not found"},
		{"counters", "GET", "/api/v1/fleet/counters", "", 200, `"device": "kp-2"`},
		{"counter service unknown", "PATCH", "/api/v1/fleet/counters/c2", `{"service":"nope"}`, 422, `service \"nope\" is not in services`},
		{"service", "PUT", "/api/v1/fleet/services/tax", `{"name":"Taxes"}`, 200, "ok"},
		{"counter service", "PATCH", "/api/v1/fleet/counters/c2", `{"service":"tax"}`, 200, "ok"},
		{"operator bad org", "PUT", "/api/v1/fleet/operators/ana", `{"name":"Ana","org":"nope"}`, 422, "is not an organisation"},
		{"operator", "PUT", "/api/v1/fleet/operators/ana", `{"name":"Ana","org":"acme"}`, 200, "ok"},
		{"get override", "GET", "/api/v1/fleet/config/org/acme", "", 200, `"vote_window_s": 25`},
		{"get override none", "GET", "/api/v1/fleet/config/site/centre", "", 200, "{}"},
		{"bad level", "GET", "/api/v1/fleet/config/planet/x", "", 422, "not org, site or device"},
		{"put override", "PUT", "/api/v1/fleet/config/site/centre", `{"mode":"always_on"}`, 200, "always_on"},
		{"put invalid", "PUT", "/api/v1/fleet/config/site/centre", `{"heartbeat_s":0}`, 422, "heartbeat_s 0"},
		{"export", "GET", "/api/v1/fleet/export", "", 200, "mode: always_on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := call(t, srv, tt.method, tt.path, tt.body)
			if code != tt.code || !strings.Contains(body, tt.want) {
				t.Fatalf("%s %s = %d %s\nwant %d containing %q", tt.method, tt.path, code, body, tt.code, tt.want)
			}
		})
	}
	// The export is a fleet file that parses back.
	_, body := call(t, srv, "GET", "/api/v1/fleet/export", "")
	if _, err := registry.ParseFile([]byte(body)); err != nil {
		t.Errorf("export does not parse: %v", err)
	}
	// Applied = desired shows in sync.
	c, _ := db.Current().Config("kp-2")
	applied = c.Version
	_, body = call(t, srv, "GET", "/api/v1/fleet/devices", "")
	var devs []fleetapi.DeviceView
	if err := json.Unmarshal([]byte(body), &devs); err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.ID == "kp-1" && d.Config != nil {
			t.Errorf("retired device has a config status: %+v", d.Config)
		}
	}
}

// FuzzBodies sends arbitrary bodies to every write endpoint: the API must
// answer, never with a 500, and never leave an invalid fleet behind.
func FuzzBodies(f *testing.F) {
	for _, s := range []string{`{}`, `{"id":"kp-2","counter":"c2"}`, `{"counter":""}`, `{"state":"retired"}`,
		`{"device":"kp-1","operator":""}`, `{"panel":{"lang":"en","texts":{"en":"x"}}}`, `{"vote_window_s":-1}`, `null`, `[]`} {
		f.Add(s)
	}
	srv, db := newServer(f, nil)
	targets := []struct{ method, path string }{
		{"POST", "/api/v1/fleet/devices"},
		{"PATCH", "/api/v1/fleet/devices/kp-1"},
		{"PATCH", "/api/v1/fleet/counters/c2"},
		{"PUT", "/api/v1/fleet/config/site/centre"},
		{"PUT", "/api/v1/fleet/config/device/kp-1"},
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, tg := range targets {
			if code, out := call(t, srv, tg.method, tg.path, body); code >= 500 {
				t.Fatalf("%s %s %q = %d %s", tg.method, tg.path, body, code, out)
			}
		}
		ex, err := db.Export(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := registry.Build(ex); err != nil {
			t.Fatalf("fleet invalid after %q: %v", body, err)
		}
	})
}
