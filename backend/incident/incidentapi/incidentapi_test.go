package incidentapi

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/incident"
	"github.com/semko/semko/backend/incident/sqlite"
)

// The test server takes the principal from a header, as the access
// router will from the session or token; nothing else is faked.
var principals = map[string]access.Principal{
	"olga":  {Account: "olga", Role: access.CustomerService, Scope: access.Scope{Orgs: []string{"shop"}}},
	"shopm": {Account: "shopm", Role: access.Manager, Scope: access.Scope{Sites: []string{"mall"}}},
	"boris": {Account: "boris", Role: access.CustomerService, Scope: access.Scope{Orgs: []string{"bank"}}},
	"vera":  {Account: "vera", Role: access.Viewer, Scope: access.Scope{Orgs: []string{"shop"}}},
}

type fixture struct {
	srv    *httptest.Server
	filesD string
	alerts *alert.Manager
}

func newServer(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "incidents.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	filesDir := filepath.Join(dir, "files")
	files, err := incident.NewFiles(filesDir, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	clock := clockwork.NewFakeClockAt(time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC))
	desk, err := incident.New(incident.Options{Config: incident.Config{MaxAttachment: 256 << 10}, Store: store, Files: files, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	am, err := alert.New(context.Background(), alert.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	routes, err := Routes(Options{Desk: desk, Alerts: am})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.Handle(rt.Pattern, rt.Handler)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := principals[r.Header.Get("X-Test-Account")]; ok {
			r = r.WithContext(access.WithPrincipal(r.Context(), p))
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return fixture{srv: srv, filesD: filesDir, alerts: am}
}

func (f fixture) do(t *testing.T, who, method, path, ctype string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if who != "" {
		req.Header.Set("X-Test-Account", who)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (f fixture) json(t *testing.T, who, method, path string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	return f.do(t, who, method, path, "application/json", bytes.NewReader(b))
}

const script = `<script>alert("x")</script>`

var goodDraft = map[string]any{"org": "shop", "site": "mall", "department": "retail", "channel": "in_person", "type": "poor_service",
	"customer_name": "Мария Петрова", "remark_no": "12", "description": "Rude answer at the till " + script}

func TestJourneyOverJSON(t *testing.T) {
	f := newServer(t)
	code, b := f.json(t, "olga", "POST", "/api/v1/incidents", goodDraft)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	var got IncidentAnswer
	json.Unmarshal(b, &got)
	id := got.Incident.ID
	if strings.Contains(string(b), "<script>") || got.Incident.Description != goodDraft["description"] {
		t.Fatalf("markup must be kept as text and escaped in JSON: %s", b)
	}
	path := "/api/v1/incidents/" + itoa(id)

	steps := []struct {
		who, path string
		body      any
		want      int
	}{
		{"", path + "/pass", map[string]string{"to": "maria", "comment": "go"}, http.StatusUnauthorized},
		{"boris", path + "/pass", map[string]string{"to": "maria", "comment": "go"}, http.StatusNotFound},
		{"vera", path + "/pass", map[string]string{"to": "maria", "comment": "go"}, http.StatusForbidden},
		{"olga", path + "/close", map[string]any{"outcome": "x"}, http.StatusConflict},
		{"olga", path + "/pass", map[string]string{"to": "maria"}, http.StatusUnprocessableEntity},
		{"olga", path + "/pass", map[string]string{"to": "maria", "comment": "please call " + script}, http.StatusOK},
		{"shopm", path + "/update", map[string]string{"comment": "invited for tomorrow"}, http.StatusOK},
		{"shopm", path + "/close", map[string]any{"outcome": "goods exchanged", "called_back": true}, http.StatusOK},
		{"olga", path + "/reopen", map[string]string{"comment": "called again"}, http.StatusOK},
		{"olga", path + "/update", map[string]any{"comment": "x", "extra": 1}, http.StatusBadRequest},
	}
	for i, s := range steps {
		if code, b := f.json(t, s.who, "POST", s.path, s.body); code != s.want {
			t.Fatalf("step %d %s as %q: %d %s, want %d", i, s.path, s.who, code, b, s.want)
		}
	}
	code, b = f.do(t, "olga", "GET", path, "", nil)
	json.Unmarshal(b, &got)
	if code != 200 || len(got.Trail) != 5 || got.Incident.State != incident.StateInProgress {
		t.Fatalf("get: %d %s", code, b)
	}
	// Another organisation's incident by URL: 404, as if it did not exist.
	if code, _ := f.do(t, "boris", "GET", path, "", nil); code != http.StatusNotFound {
		t.Fatalf("other org by URL: %d", code)
	}
	code, b = f.do(t, "boris", "GET", "/api/v1/incidents", "", nil)
	if code != 200 || strings.Contains(string(b), `"id"`) {
		t.Fatalf("other org's list: %d %s", code, b)
	}
	code, b = f.do(t, "shopm", "GET", "/api/v1/incidents?open=1&department=retail", "", nil)
	if code != 200 || !strings.Contains(string(b), `"id":`+itoa(id)) {
		t.Fatalf("site manager's list: %d %s", code, b)
	}
}

func TestFieldErrorsAndNothingHalfSaved(t *testing.T) {
	f := newServer(t)
	bad := map[string]any{"org": "shop", "site": "mall", "department": "retail", "channel": "in_person", "type": "poor_service", "customer_name": "??"}
	code, b := f.json(t, "olga", "POST", "/api/v1/incidents", bad)
	var e errorAnswer
	json.Unmarshal(b, &e)
	if code != http.StatusUnprocessableEntity || e.Codes["remark_no"] != "remark" || e.Codes["description"] != "comment" || e.Codes["customer_name"] != "name" {
		t.Fatalf("field errors: %d %s", code, b)
	}
	// Out of scope to register at all: 404.
	if code, _ := f.json(t, "boris", "POST", "/api/v1/incidents", goodDraft); code != http.StatusNotFound {
		t.Fatalf("register for another org: %d", code)
	}
	// A multipart registration with a huge file and one of the wrong type:
	// refused, no incident, no file left behind.
	for name, c := range map[string]struct {
		file []byte
		want int
	}{
		"huge.png":  {append(pngOf(t, 800, 800), make([]byte, 300<<10)...), http.StatusRequestEntityTooLarge},
		"page.html": {[]byte("<html><body>" + script), http.StatusUnsupportedMediaType},
	} {
		code, b := f.multipart(t, "olga", "/api/v1/incidents", goodDraft, map[string][]byte{"ok.png": pngOf(t, 900, 700), name: c.file})
		if code != c.want {
			t.Fatalf("%s: %d %s, want %d", name, code, b, c.want)
		}
	}
	if _, b := f.do(t, "olga", "GET", "/api/v1/incidents", "", nil); strings.Contains(string(b), `"id"`) {
		t.Fatalf("a refused registration left an incident: %s", b)
	}
	if left, _ := os.ReadDir(f.filesD); len(left) != 0 {
		t.Fatalf("a refused registration left %d files", len(left))
	}
}

func TestMultipartWithScanAndPreview(t *testing.T) {
	f := newServer(t)
	scan := pngOf(t, 1240, 1754)
	code, b := f.multipart(t, "olga", "/api/v1/incidents", goodDraft, map[string][]byte{"claim.png": scan})
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	var got IncidentAnswer
	json.Unmarshal(b, &got)
	if len(got.Incident.Attachments) != 1 || got.Incident.Attachments[0].Width != 1240 {
		t.Fatalf("attachment %+v", got.Incident.Attachments)
	}
	a := got.Incident.Attachments[0]
	req, _ := http.NewRequest("GET", f.srv.URL+"/api/v1/incidents/"+itoa(got.Incident.ID)+"/attachments/"+a.Hash, nil)
	req.Header.Set("X-Test-Account", "shopm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, scan) || resp.Header.Get("Content-Type") != "image/png" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Fatalf("preview: %d %v", resp.StatusCode, resp.Header)
	}
	// The same hash through another organisation's account: 404.
	if code, _ := f.do(t, "boris", "GET", "/api/v1/incidents/"+itoa(got.Incident.ID)+"/attachments/"+a.Hash, "", nil); code != 404 {
		t.Fatalf("other org's scan: %d", code)
	}
	// A blurred scan added later is an interaction error.
	code, b = f.multipart(t, "olga", "/api/v1/incidents/"+itoa(got.Incident.ID)+"/attachments", nil, map[string][]byte{"blur.png": pngOf(t, 300, 200)})
	if code != http.StatusUnprocessableEntity || !strings.Contains(string(b), `"resolution"`) {
		t.Fatalf("blurred scan: %d %s", code, b)
	}
}

func TestFromAlert(t *testing.T) {
	f := newServer(t)
	ctx := context.Background()
	err := f.alerts.Raise(ctx, alert.Finding{Kind: alert.KindNegativeVote, Severity: alert.SeverityWarning,
		Subject: alert.Subject{Org: "shop", Site: "mall", Counter: "c3"}, Message: "Rating 1 at counter 3",
		Details: map[string]string{"score": "1", "counter_name": "Counter 3"}, Time: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	list, _ := f.alerts.List(ctx, alert.Filter{})
	if len(list) != 1 {
		t.Fatalf("alerts %+v", list)
	}
	path := "/api/v1/incident-from-alert/" + itoa(list[0].ID)
	if code, _ := f.do(t, "boris", "POST", path, "", nil); code != 404 {
		t.Fatalf("another org's alert: %d", code)
	}
	code, b := f.do(t, "olga", "POST", path, "", nil)
	var got IncidentAnswer
	json.Unmarshal(b, &got)
	in := got.Incident
	if code != http.StatusCreated || in.Channel != incident.ChannelKeypadNegative || in.SourceAlert != list[0].ID || in.Site != "mall" ||
		!strings.Contains(in.Description, "Counter 3") {
		t.Fatalf("from alert: %d %s", code, b)
	}
}

func (f fixture) multipart(t *testing.T, who, path string, fields map[string]any, files map[string][]byte) (int, []byte) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		mw.WriteField(k, v.(string))
	}
	for name, data := range files {
		w, _ := mw.CreateFormFile("file", name)
		w.Write(data)
	}
	mw.Close()
	return f.do(t, who, "POST", path, mw.FormDataContentType(), &body)
}

func pngOf(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7) // noise, so the PNG is not tiny
	}
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
