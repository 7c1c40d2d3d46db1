package main

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

func TestDiagCmd(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		if r.URL.Path == "/api/v1/diagnostics/nonsense" {
			http.Error(w, `{"error":"unknown check"}`, http.StatusNotFound)
			return
		}
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	t.Setenv("SEMKO_API_TOKEN", "tok")
	tests := []struct {
		args []string
		code int
		call string
	}{
		{[]string{"-server", srv.URL}, 0, "GET /api/v1/diagnostics Bearer tok"},
		{[]string{"-server", srv.URL, "run", "selftest"}, 0, "POST /api/v1/diagnostics/selftest Bearer tok"},
		{[]string{"-server", srv.URL, "run", "nonsense"}, 1, "POST /api/v1/diagnostics/nonsense Bearer tok"},
		{[]string{"-server", srv.URL, "walk"}, 2, ""},
	}
	for _, tc := range tests {
		mu.Lock()
		got = nil
		mu.Unlock()
		if code := diagnosticsCmd(tc.args); code != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.code)
		}
		mu.Lock()
		if tc.call != "" && (len(got) != 1 || got[0] != tc.call) {
			t.Errorf("%v: calls %q, want %q", tc.args, got, tc.call)
		}
		mu.Unlock()
	}
}
