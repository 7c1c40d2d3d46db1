package alertapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/api"
)

const token = "test-token"

func TestEndpoints(t *testing.T) {
	ctx := context.Background()
	m, err := alert.New(ctx, alert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"kp-1", "kp-2"} {
		if err := m.Raise(ctx, alert.Finding{Kind: alert.KindOffline, Subject: alert.Subject{Org: "o1", Site: "s1", Device: dev}, Message: dev + " offline"}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := api.New(api.Options{Token: token, Routes: Routes(m, nil)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	call := func(method, path, body string, auth bool) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if auth {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name, method, path, body string
		auth                     bool
		status                   int
		contains                 string
	}{
		{"needs the token", "GET", "/api/v1/alerts", "", false, 401, ""},
		{"list all", "GET", "/api/v1/alerts", "", true, 200, `"kp-2"`},
		{"filter by device", "GET", "/api/v1/alerts?device=kp-1&state=open", "", true, 200, `"kp-1"`},
		{"bad state", "GET", "/api/v1/alerts?state=sleeping", "", true, 400, "state"},
		{"bad since", "GET", "/api/v1/alerts?since=yesterday", "", true, 400, "since"},
		{"get one with trail", "GET", "/api/v1/alerts/1", "", true, 200, `"raised"`},
		{"get unknown", "GET", "/api/v1/alerts/99", "", true, 404, ""},
		{"bad id answers as unknown", "GET", "/api/v1/alerts/x", "", true, 404, ""},
		{"ack", "POST", "/api/v1/alerts/1/ack", `{"by":"ivan","comment":"on my way"}`, true, 200, `"acknowledged"`},
		{"ack without name", "POST", "/api/v1/alerts/2/ack", `{}`, true, 400, "who"},
		{"ack unknown field", "POST", "/api/v1/alerts/2/ack", `{"who":"x"}`, true, 400, "unknown field"},
		{"resolve", "POST", "/api/v1/alerts/1/resolve", `{"by":"ivan","comment":"cable replaced"}`, true, 200, `"resolved"`},
		{"resolve again", "POST", "/api/v1/alerts/1/resolve", `{"by":"ivan"}`, true, 409, "already resolved"},
		{"ack resolved", "POST", "/api/v1/alerts/1/ack", `{"by":"ivan"}`, true, 409, ""},
		{"list resolved", "GET", "/api/v1/alerts?state=resolved", "", true, 200, `"cable replaced"`},
		{"silence", "POST", "/api/v1/silences", `{"matchers":{"site":"s1"},"duration":"2h","created_by":"ops","comment":"move"}`, true, 201, `"s1"`},
		{"silence without end", "POST", "/api/v1/silences", `{"matchers":{"site":"s1"},"created_by":"ops"}`, true, 400, "end"},
		{"silence bad label", "POST", "/api/v1/silences", `{"matchers":{"colour":"red"},"duration":"1h","created_by":"ops"}`, true, 400, "unknown label"},
		{"silence bad duration", "POST", "/api/v1/silences", `{"matchers":{"site":"s1"},"duration":"soon","created_by":"ops"}`, true, 400, "duration"},
		{"list silences", "GET", "/api/v1/silences", "", true, 200, `"move"`},
		{"delete unknown silence", "DELETE", "/api/v1/silences/nope", "", true, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(tt.method, tt.path, tt.body, tt.auth)
			if status != tt.status || !strings.Contains(body, tt.contains) {
				t.Fatalf("%s %s = %d %s; want %d containing %q", tt.method, tt.path, status, body, tt.status, tt.contains)
			}
		})
	}
	var ss SilencesAnswer
	_, body := call("GET", "/api/v1/silences", "", true)
	if err := json.NewDecoder(bytes.NewReader([]byte(body))).Decode(&ss); err != nil || len(ss.Silences) != 1 {
		t.Fatalf("silences = %s", body)
	}
	if status, _ := call("DELETE", "/api/v1/silences/"+ss.Silences[0].ID, "", true); status != 204 {
		t.Fatalf("delete silence: %d", status)
	}
	if len(m.Silences()) != 0 {
		t.Fatal("silence still there")
	}
}
