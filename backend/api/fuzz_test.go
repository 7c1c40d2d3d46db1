package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/semko/semko/protocol"
)

// FuzzActivate posts arbitrary bodies: the handler must answer 202 for what
// protocol.Decode accepts and 400 or 413 for the rest, never anything else.
func FuzzActivate(f *testing.F) {
	f.Add(goodActivate)
	f.Add(`{"v":1,"id":"act-7f3a","ts":"2026-11-24T09:30:12.85Z","ticket":"A-113","service_s":312,"window_s":20}`)
	f.Add(`{"v":2,"id":"x"}`)
	f.Add(`[]`)
	accept := ActivatorFunc(func(context.Context, string, protocol.Activate) error { return nil })
	h, err := New(Options{Token: token, Activator: accept})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/devices/kp-0001/activate", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		_, decodeErr := protocol.Decode[protocol.Activate]([]byte(body))
		switch {
		case decodeErr == nil && rec.Code != http.StatusAccepted:
			t.Fatalf("valid body answered %d: %s", rec.Code, rec.Body)
		case decodeErr != nil && rec.Code != http.StatusBadRequest && rec.Code != http.StatusRequestEntityTooLarge:
			t.Fatalf("invalid body answered %d: %s", rec.Code, rec.Body)
		}
	})
}
