package surveyapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/survey"
	"github.com/semko/semko/backend/survey/internal/surveytest"
	"github.com/semko/semko/backend/survey/surveyapi"
	"github.com/semko/semko/fleet/registry"
)

// serve mounts the routes with principal p in every request's context, as
// the access router would.
func serve(t *testing.T, env *surveytest.Env, p *access.Principal) string {
	t.Helper()
	mux := http.NewServeMux()
	reg := env.Reg
	for _, rt := range surveyapi.Routes(env.Engine, func() *registry.Registry { return reg }, nil) {
		mux.Handle(rt.Pattern, rt.Handler)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p != nil {
			r = r.WithContext(access.WithPrincipal(r.Context(), *p))
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func call(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestScopeAndRoles(t *testing.T) {
	env := surveytest.New(t, nil)
	ctx := context.Background()
	// A detractor at c1 (o1/s1).
	inv, err := env.Engine.Invite(ctx, survey.Contact{Counter: "c1", Email: "a@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.Engine.AnswerLink(ctx, survey.Token{Kind: survey.TokenAnswer, Ref: inv.ID, Score: 1}, 1); err != nil {
		t.Fatal(err)
	}
	fs, _ := env.Engine.FollowUps(ctx, survey.FollowUpFilter{})
	id := "/api/v1/survey/followups/" + itoa(fs[0].ID)

	in := serve(t, env, &access.Principal{Account: "maria", Role: access.CustomerService, Scope: access.Scope{Sites: []string{"s1"}}})
	out := serve(t, env, &access.Principal{Account: "bank", Role: access.Manager, Scope: access.Scope{Orgs: []string{"o2"}}})
	tech := serve(t, env, &access.Principal{Account: "tech", Role: access.Technician, Scope: access.Everything})
	none := serve(t, env, nil)

	var list surveyapi.ListAnswer
	code, body := call(t, "GET", in+"/api/v1/survey/followups", "")
	if code != 200 || json.Unmarshal(body, &list) != nil || len(list.FollowUps) != 1 || list.Stats.Open != 1 {
		t.Fatalf("in scope list = %d %s", code, body)
	}
	code, body = call(t, "GET", out+"/api/v1/survey/followups", "")
	if code != 200 || json.Unmarshal(body, &list) != nil || len(list.FollowUps) != 0 {
		t.Fatalf("out of scope list = %d %s", code, body)
	}
	for _, c := range []struct {
		base, method, path, body string
		want                     int
	}{
		{in, "GET", id, "", 200},
		{out, "GET", id, "", 404},
		{out, "POST", id + "/close", `{"outcome":"x"}`, 404},
		{tech, "GET", id, "", 404},
		{none, "GET", id, "", 404},
		{in, "POST", id + "/close", `{"outcome":""}`, 400},
		{in, "POST", id + "/close", `{"outcome":"called back"}`, 200},
		{in, "POST", id + "/close", `{"outcome":"again"}`, 409},
		{in, "POST", id + "/notify", `{}`, 409}, // no consent, no address
		{out, "POST", "/api/v1/survey/contacts", `{"counter":"c1","email":"b@example.org"}`, 404},
		{in, "POST", "/api/v1/survey/contacts", `{"counter":"c1","email":"b@example.org"}`, 202},
		{in, "POST", "/api/v1/survey/contacts", `{"counter":"c1"}`, 400},
		{in, "POST", "/api/v1/survey/contacts", `{"counter":"c1","email":"b@example.org","extra":1}`, 400},
		{out, "GET", "/api/v1/survey/counters/c1/qr.png", "", 404},
		{tech, "GET", "/api/v1/survey/counters/c1/qr.png?size=5000", "", 400},
	} {
		if code, body := call(t, c.method, c.base+c.path, c.body); code != c.want {
			t.Errorf("%s %s = %d %s, want %d", c.method, c.path, code, body, c.want)
		}
	}

	// The QR code: a PNG, and the printable page names the counter.
	code, body = call(t, "GET", tech+"/api/v1/survey/counters/c1/qr.png?size=256", "")
	if code != 200 {
		t.Fatalf("qr.png = %d", code)
	}
	img, err := png.Decode(bytes.NewReader(body))
	if err != nil || img.Bounds().Dx() != 256 {
		t.Fatalf("qr.png: %v %v", err, img)
	}
	code, body = call(t, "GET", tech+"/api/v1/survey/counters/c1/qr?lang=bg", "")
	if code != 200 || !strings.Contains(string(body), "Гише 1") || !strings.Contains(string(body), "qr.png") || strings.Contains(string(body), "<script") {
		t.Fatalf("qr page = %d %s", code, body)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
