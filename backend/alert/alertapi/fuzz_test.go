package alertapi

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/semko/semko/backend/alert"
)

// FuzzBodies posts arbitrary bodies to the endpoints that decode JSON: an
// answer is 2xx or 4xx, never a 500 or a panic.
func FuzzBodies(f *testing.F) {
	f.Add(uint8(0), []byte(`{"by":"ivan","comment":"on my way"}`))
	f.Add(uint8(1), []byte(`{"by":"ivan"}`))
	f.Add(uint8(2), []byte(`{"matchers":{"site":"s1","kind":"offline,stuck_key"},"duration":"2h","created_by":"ops"}`))
	f.Add(uint8(2), []byte(`{"matchers":{"site":"s1"},"ends_at":"2030-01-01T00:00:00Z","starts_at":"2029-01-01T00:00:00Z","created_by":"ops"}`))
	f.Add(uint8(2), []byte(`{"matchers":{},"duration":"-1h"}`))
	ctx := context.Background()
	m, err := alert.New(ctx, alert.Options{})
	if err != nil {
		f.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, r := range Routes(m, nil) {
		mux.Handle(r.Pattern, r.Handler)
	}
	paths := []string{"/api/v1/alerts/1/ack", "/api/v1/alerts/1/resolve", "/api/v1/silences"}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		m.Raise(ctx, alert.Finding{Kind: alert.KindOffline, Subject: alert.Subject{Device: "kp-1"}})
		req := httptest.NewRequest("POST", paths[int(which)%len(paths)], bytes.NewReader(body))
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %q: %d %s", req.URL.Path, body, w.Code, w.Body)
		}
	})
}
