package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/alertapi"
	"github.com/semko/semko/backend/api"
)

func TestAlertsAndSilencesCommands(t *testing.T) {
	ctx := context.Background()
	m, err := alert.New(ctx, alert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.Raise(ctx, alert.Finding{Kind: alert.KindStuckKey, Subject: alert.Subject{Org: "o1", Site: "s1", Device: "kp-7"}, Message: "key 5 stuck"})
	h, err := api.New(api.Options{Token: "tok", Routes: alertapi.Routes(m, nil)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	t.Setenv("SEMKO_API_TOKEN", "tok")
	t.Setenv("SEMKO_SERVER", srv.URL)

	run := func(main func([]string, *bytes.Buffer, *bytes.Buffer) int, args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := main(args, &out, &errb)
		return code, out.String() + errb.String()
	}
	alerts := func(a []string, o, e *bytes.Buffer) int { return alertsMain(a, o, e) }
	silences := func(a []string, o, e *bytes.Buffer) int { return silencesMain(a, o, e) }
	tests := []struct {
		name string
		main func([]string, *bytes.Buffer, *bytes.Buffer) int
		args []string
		code int
		want string
	}{
		{"list", alerts, []string{"list"}, 0, "key 5 stuck"},
		{"ack", alerts, []string{"ack", "-by", "ivan", "-m", "coming", "1"}, 0, "alert 1 acknowledged by ivan"},
		{"list acknowledged", alerts, []string{"list", "-state", "acknowledged"}, 0, "o1/s1//kp-7"},
		{"resolve", alerts, []string{"resolve", "-by", "ivan", "1"}, 0, "alert 1 resolved"},
		{"resolve again", alerts, []string{"resolve", "-by", "ivan", "1"}, 1, "409"},
		{"ack without id", alerts, []string{"ack"}, 2, "usage"},
		{"unknown sub", alerts, []string{"mute"}, 2, "usage"},
		{"add silence", silences, []string{"add", "-match", "site=s1", "-match", "kind=offline,stuck_key", "-for", "2h", "-by", "ops"}, 0, "silence s"},
		{"bad matcher", silences, []string{"add", "-match", "site"}, 2, "LABEL=VALUE"},
		{"list silences", silences, []string{"list"}, 0, "ops"},
		{"rm unknown", silences, []string{"rm", "nope"}, 1, "404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := run(tt.main, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Fatalf("%v: exit %d, output %q; want %d containing %q", tt.args, code, out, tt.code, tt.want)
			}
		})
	}
	id := m.Silences()[0].ID
	if code, out := run(silences, "rm", id); code != 0 || len(m.Silences()) != 0 {
		t.Fatalf("rm: %d %s", code, out)
	}
}
