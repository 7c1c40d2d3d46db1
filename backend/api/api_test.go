package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/fleet/live"
	"github.com/semko/semko/backend/intake/ingest"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/protocol"
)

const token = "s3cret-token"

// fakeActivator records activations and fails as told.
type fakeActivator struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (f *fakeActivator) Activate(_ context.Context, device string, a protocol.Activate) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.calls = append(f.calls, device+"/"+a.ID)
	return nil
}

type env struct {
	url   string
	act   *fakeActivator
	ready *error
}

func start(t *testing.T) *env {
	t.Helper()
	prom := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "semko_test_total", Help: "test"})
	prom.MustRegister(c)
	c.Add(3)
	e := &env{act: &fakeActivator{}, ready: new(error)}
	h, err := New(Options{
		Token:     token,
		Ready:     func() error { return *e.ready },
		Gatherer:  prom,
		Activator: e.act,
		Devices: func() []live.DeviceState {
			return []live.DeviceState{{Device: "kp-0001", Online: true, Placement: registry.Placement{Org: "org-1"}}}
		},
		Summary: func() ingest.Summary { return ingest.Summary{UnitsKnown: 7, VotesLastMinute: 3} },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h) // real HTTP over loopback
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

func (e *env) do(t *testing.T, method, path, auth, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

const goodActivate = `{"v":1,"id":"act-1","service":"passport"}`

func TestRoutes(t *testing.T) {
	bearer := "Bearer " + token
	tests := []struct {
		name       string
		method     string
		path       string
		auth       string
		body       string
		wantStatus int
		wantBody   string // substring
	}{
		{"healthz", "GET", "/healthz", "", "", 200, "ok"},
		{"readyz", "GET", "/readyz", "", "", 200, `{"status":"ready"}`},
		{"metrics", "GET", "/metrics", "", "", 200, "semko_test_total 3"},
		{"devices", "GET", "/api/v1/devices", bearer, "", 200, `"device":"kp-0001"`},
		{"summary", "GET", "/api/v1/summary", bearer, "", 200, `"units_known":7`},
		{"devices without token", "GET", "/api/v1/devices", "", "", 401, `"error"`},
		{"devices wrong token", "GET", "/api/v1/devices", "Bearer nope", "", 401, `"error"`},
		{"token as basic", "GET", "/api/v1/devices", "Basic " + token, "", 401, `"error"`},
		{"token prefix", "GET", "/api/v1/devices", bearer + "x", "", 401, `"error"`},
		{"unknown api path", "GET", "/api/v1/nothing", bearer, "", 404, `"error"`},
		{"unknown api path without token", "GET", "/api/v1/nothing", "", "", 401, `"error"`},
		{"activate", "POST", "/api/v1/devices/kp-0001/activate", bearer, goodActivate, 202, `"status":"accepted"`},
		{"activate without token", "POST", "/api/v1/devices/kp-0001/activate", "", goodActivate, 401, `"error"`},
		{"activate without v", "POST", "/api/v1/devices/kp-0001/activate", bearer, `{"id":"act-1"}`, 400, "unsupported payload version"},
		{"activate without id", "POST", "/api/v1/devices/kp-0001/activate", bearer, `{"v":1}`, 400, "id missing"},
		{"activate not json", "POST", "/api/v1/devices/kp-0001/activate", bearer, `{"v":1,`, 400, `"error"`},
		{"activate bad window", "POST", "/api/v1/devices/kp-0001/activate", bearer, `{"v":1,"id":"a","window_s":99999}`, 400, "window_s"},
		{"activate bad device id", "POST", "/api/v1/devices/kp%2001/activate", bearer, goodActivate, 400, "invalid device id"},
		{"activate huge body", "POST", "/api/v1/devices/kp-0001/activate", bearer, `{"v":1,"id":"a","ticket":"` + strings.Repeat("x", 2*maxBody) + `"}`, 413, `"error"`},
		{"activate with GET", "GET", "/api/v1/devices/kp-0001/activate", bearer, "", 404, `"error"`},
	}
	e := start(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := e.do(t, tt.method, tt.path, tt.auth, tt.body)
			if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, status, body, tt.wantStatus, tt.wantBody)
			}
			if strings.Contains(tt.wantBody, `"`) && hdr.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type = %q", hdr.Get("Content-Type"))
			}
			if status == 401 && hdr.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if len(e.act.calls) != 1 || e.act.calls[0] != "kp-0001/act-1" {
		t.Errorf("activator calls = %v, want exactly the authorised valid one", e.act.calls)
	}
}

func TestNotReady(t *testing.T) {
	e := start(t)
	*e.ready = errors.New("spool not open")
	status, _, body := e.do(t, "GET", "/readyz", "", "")
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if status != 503 || got["reason"] != "spool not open" || got["status"] != "not ready" {
		t.Fatalf("readyz = %d %q", status, body)
	}
}

func TestActivatorErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
	}{
		{"unknown device wrapped", wrap(registry.ErrUnknownDevice), 404},
		{"bad request", wrap(protocol.ErrInvalid), 400},
		{"broker down", errors.New("broker closed"), 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t)
			e.act.err = tt.err
			status, _, body := e.do(t, "POST", "/api/v1/devices/kp-0009/activate", "Bearer "+token, goodActivate)
			if status != tt.wantStatus || !strings.Contains(body, `"error"`) {
				t.Fatalf("= %d %q, want %d", status, body, tt.wantStatus)
			}
		})
	}
}

func wrap(err error) error { return errors.Join(errors.New("context"), err) }

func TestNewNeedsToken(t *testing.T) {
	if _, err := New(Options{}); !errors.Is(err, ErrOptions) {
		t.Fatalf("New without token = %v", err)
	}
}

func TestNilParts(t *testing.T) {
	h, err := New(Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	e := &env{url: srv.URL}
	tests := []struct {
		method, path, body string
		wantStatus         int
		wantBody           string
	}{
		{"GET", "/readyz", "", 200, "ready"},
		{"GET", "/metrics", "", 404, ""},
		{"GET", "/api/v1/devices", "", 200, "[]"},
		{"GET", "/api/v1/summary", "", 200, `"units_known":0`},
		{"POST", "/api/v1/devices/kp-0001/activate", goodActivate, 503, "not configured"},
	}
	for _, tt := range tests {
		status, _, body := e.do(t, tt.method, tt.path, "Bearer "+token, tt.body)
		if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
			t.Errorf("%s %s = %d %q", tt.method, tt.path, status, body)
		}
	}
}

type fakePublisher struct {
	topic   string
	payload []byte
	retain  bool
	qos     byte
}

func (p *fakePublisher) Publish(topic string, payload []byte, retain bool, qos byte) error {
	p.topic, p.payload, p.retain, p.qos = topic, payload, retain, qos
	return nil
}

func TestPublishActivator(t *testing.T) {
	reg, err := registry.Parse(strings.NewReader(`
devices:
  - {id: kp-0001, secret_hash: "sha256$00$0000000000000000000000000000000000000000000000000000000000000000"}
`))
	if err != nil {
		t.Fatal(err)
	}
	pub := &fakePublisher{}
	now := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	act := PublishActivator{Registry: func() *registry.Registry { return reg }, Publisher: pub, Now: func() time.Time { return now }}

	if err := act.Activate(t.Context(), "kp-0001", protocol.Activate{V: 1, ID: "act-1"}); err != nil {
		t.Fatal(err)
	}
	if pub.topic != protocol.DeviceTopic("kp-0001", protocol.KindActivate) || pub.retain || pub.qos != 1 {
		t.Fatalf("published %q retain=%v qos=%d", pub.topic, pub.retain, pub.qos)
	}
	got, err := protocol.Decode[protocol.Activate](pub.payload)
	if err != nil || got.ID != "act-1" || !got.Time.Equal(now) {
		t.Fatalf("payload %s: %+v %v", pub.payload, got, err)
	}
	if err := act.Activate(t.Context(), "kp-0404", protocol.Activate{V: 1, ID: "a"}); !errors.Is(err, registry.ErrUnknownDevice) {
		t.Fatalf("unknown device: %v", err)
	}
	if err := act.Activate(t.Context(), "kp-0001", protocol.Activate{V: 1}); !protocol.Permanent(err) {
		t.Fatalf("invalid activation: %v", err)
	}
}

func TestExtraRoutes(t *testing.T) {
	extra := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "alerts:"+r.PathValue("id")) })
	h, err := New(Options{Token: token, Routes: []Route{{Pattern: "GET /api/v1/alerts/{id}", Handler: extra, Rule: access.Allow(access.Admin)}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e := &env{url: srv.URL}
	if code, _, body := e.do(t, "GET", "/api/v1/alerts/a-1", "Bearer "+token, ""); code != 200 || body != "alerts:a-1" {
		t.Errorf("with token: %d %q", code, body)
	}
	if code, _, _ := e.do(t, "GET", "/api/v1/alerts/a-1", "", ""); code != http.StatusUnauthorized {
		t.Errorf("without token: %d, want 401", code)
	}
	if _, err := New(Options{Token: token, Routes: []Route{{Pattern: "GET /debug", Handler: extra, Rule: access.Allow(access.Admin)}}}); !errors.Is(err, ErrOptions) {
		t.Errorf("route outside /api/: %v, want ErrOptions", err)
	}
	if _, err := New(Options{Token: token, Routes: []Route{{Pattern: "GET /api/v1/norule", Handler: extra}}}); !errors.Is(err, ErrOptions) {
		t.Errorf("route without a rule: %v, want ErrOptions", err)
	}
}
