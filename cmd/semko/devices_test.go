package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/semko/semko/backend/api"
	"github.com/semko/semko/backend/fleet/fleetapi"
	"github.com/semko/semko/backend/fleet/fleetdb"
	"github.com/semko/semko/broker"
)

func TestDevicesCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "fleet.yaml")
	const hash = "sha256$00$0000000000000000000000000000000000000000000000000000000000000000"
	if err := os.WriteFile(file, []byte(`
organisations:
  - id: acme
    timezone: UTC
    sites:
      - id: centre
        counters: [{id: c1, device: kp-1}, {id: c2}]
devices:
  - {id: kp-1, secret_hash: "`+hash+`"}
operators: [{id: ana, org: acme}]
services: [{id: tax}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := fleetdb.Open(ctx, fleetdb.Options{Path: filepath.Join(dir, "fleet.db"), HashSecret: broker.HashSecret})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ApplyFile(ctx, file, false); err != nil {
		t.Fatal(err)
	}
	var routes []api.Route
	for _, r := range fleetapi.Routes(fleetapi.Options{DB: db}) {
		routes = append(routes, api.Route{Pattern: r.Pattern, Handler: r.Handler, Rule: r.Rule})
	}
	h, err := api.New(api.Options{Token: "tok", Routes: routes})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	t.Setenv("SEMKO_API_TOKEN", "tok")
	t.Setenv("SEMKO_SERVER", srv.URL)

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"list", []string{"list"}, 0, "kp-1    active  acme/centre/c1"},
		{"add", []string{"add", "-counter", "c2", "-model", "SK5", "kp-2"}, 0, "secret: "},
		{"add twice", []string{"add", "kp-2"}, 1, "409"},
		{"move", []string{"move", "kp-2", "c1"}, 0, "device kp-2 now at acme/centre/c1"},
		{"replaced one unplaced", []string{"show", "kp-1"}, 0, `"replaced"`},
		{"assign", []string{"assign", "-operator", "ana", "-service", "tax", "c1"}, 0, "counter c1 updated"},
		{"assign unknown operator", []string{"assign", "-operator", "bob", "c1"}, 1, `operator "bob" is not in operators`},
		{"config set", []string{"config", "set", "site", "centre", `{"vote_window_s": 40}`}, 0, "config override set"},
		{"config set invalid", []string{"config", "set", "device", "kp-2", `{"heartbeat_s": 0}`}, 1, "heartbeat_s 0 outside 1..86400"},
		{"config get", []string{"config", "get", "site", "centre"}, 0, `"vote_window_s": 40`},
		{"config of device", []string{"config", "kp-2"}, 0, `"vote_window_s": 40`},
		{"retire", []string{"retire", "kp-1"}, 0, "device kp-1 retired"},
		{"list after", []string{"list"}, 0, "kp-1    retired"},
		{"export", []string{"export"}, 0, "id: kp-2"},
		{"unknown sub", []string{"teleport"}, 2, "usage"},
		{"move without counter", []string{"move", "kp-2"}, 2, "usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := devicesMain(tt.args, &out, &errb)
			got := out.String() + errb.String()
			if code != tt.code || !strings.Contains(got, tt.want) {
				t.Fatalf("semko devices %v = %d\n%s\nwant %d and %q", tt.args, code, got, tt.code, tt.want)
			}
		})
	}
	if p, _ := db.Current().Placement("kp-2"); p.Counter != "c1" || p.Operator != "ana" || p.Service != "tax" {
		t.Errorf("kp-2 placement %+v", p)
	}
}
