package edge

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/semko/semko/protocol"
)

func TestHTTPActivate(t *testing.T) {
	rec := &recorder{}
	b := startBroker(t, "127.0.0.1:0", rec)
	a := startAgent(t, Config{Broker: b.url(), DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0"})
	base := "http://" + a.HTTPAddr().String()

	tests := []struct {
		name, method, path, body string
		status                   int
		contains                 string
	}{
		{name: "activate", method: "POST", path: "/activate", body: `{"id":"q-1","service":"tax","service_s":60}`, status: 202, contains: `"open"`},
		{name: "repeat is fine", method: "POST", path: "/activate", body: `{"id":"q-1"}`, status: 202},
		{name: "not json", method: "POST", path: "/activate", body: `id=q-2`, status: 400, contains: "not an activation"},
		{name: "missing id", method: "POST", path: "/activate", body: `{"service":"tax"}`, status: 400, contains: "id missing"},
		{name: "window too long", method: "POST", path: "/activate", body: `{"id":"q-3","window_s":99999}`, status: 400, contains: "window_s"},
		{name: "wrong version", method: "POST", path: "/activate", body: `{"v":2,"id":"q-4"}`, status: 400, contains: "version"},
		{name: "too large", method: "POST", path: "/activate", body: `{"id":"` + strings.Repeat("x", 10000) + `"}`, status: 400},
		{name: "trailing data", method: "POST", path: "/activate", body: `{"id":"q-5"} {}`, status: 400},
		{name: "wrong method", method: "GET", path: "/activate", status: 405},
		{name: "healthz", method: "GET", path: "/healthz", status: 200, contains: "ok"},
		{name: "status", method: "GET", path: "/status", status: 200, contains: `"activations":1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, base+tt.path, strings.NewReader(tt.body))
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.status || !strings.Contains(string(body), tt.contains) {
				t.Fatalf("%d %s, want %d containing %q", res.StatusCode, body, tt.status, tt.contains)
			}
		})
	}
	if arm := a.kp.expect(t, protocol.FrameArm); arm.Args[0] != "20000" {
		t.Fatalf("ARM %v", arm.Args)
	}
}

// FuzzActivateBody feeds arbitrary bodies to POST /activate: the answer is
// always a clear status, never a panic, and 202 only for a valid request.
func FuzzActivateBody(f *testing.F) {
	seed, _ := json.Marshal(protocol.SampleActivate())
	for _, s := range []string{string(seed), `{"id":"a"}`, `{}`, `null`, `[`, `{"id":"a","window_s":-1}`} {
		f.Add([]byte(s))
	}
	end, keypad := net.Pipe()
	a, err := New(Config{Device: "kp-f", Broker: "tcp://127.0.0.1:1", DataDir: f.TempDir()}, end)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { a.box.Close(); keypad.Close() })
	go io.Copy(io.Discard, keypad) // the keypad takes every ARM
	h := a.httpServer().Handler
	f.Fuzz(func(t *testing.T, body []byte) {
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, httptest.NewRequestWithContext(context.Background(), "POST", "/activate", strings.NewReader(string(body))))
		switch rr.Code {
		case 202:
			var act protocol.Activate
			if json.Unmarshal(body, &act) != nil {
				t.Fatalf("202 for %q", body)
			}
		case 400, 502, 503:
		default:
			t.Fatalf("status %d for %q", rr.Code, body)
		}
	})
}
