package webhook

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

	"github.com/semko/semko/backend/alert/notify/templates"
)

var secret = []byte("shared secret")

// receiver is a real HTTP endpoint on loopback that verifies every request
// as a user's receiver would, and answers with scripted statuses.
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	statuses []int // answers in order; 200 once they run out
	bodies   [][]byte
	badSig   []error
	ids      []string
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	t.Helper()
	r := &receiver{statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		err := Verify(secret, req.Header.Get(HeaderSignature), req.Header.Get(HeaderTimestamp), body, time.Now(), 5*time.Minute)
		r.mu.Lock()
		r.bodies = append(r.bodies, body)
		r.ids = append(r.ids, req.Header.Get(HeaderNotice))
		if err != nil {
			r.badSig = append(r.badSig, err)
		}
		status := http.StatusOK
		if len(r.statuses) > 0 {
			status, r.statuses = r.statuses[0], r.statuses[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() ([][]byte, []error, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...), append([]error(nil), r.badSig...), append([]string(nil), r.ids...)
}

func newNotifier(t *testing.T, f Format) *Notifier {
	t.Helper()
	render, err := templates.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Secret: secret, Format: f, Attempts: 3, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}, render, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNotifyRetries(t *testing.T) {
	tests := []struct {
		name         string
		statuses     []int
		wantRequests int
		wantErr      bool
		wantRetry    bool
	}{
		{"accepted at once", nil, 1, false, false},
		{"500 then 200 is retried", []int{500, 200}, 2, false, false},
		{"429 and 503 then 204", []int{429, 503, 204}, 3, false, false},
		{"400 is not retried", []int{400}, 1, true, false},
		{"404 is not retried", []int{404}, 1, true, false},
		{"500 on every attempt leaves it to the pipeline", []int{500, 500, 500, 500}, 3, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := newReceiver(t, tt.statuses...)
			n := templates.Sample(templates.GroupNegative, "bg")
			n.Receiver.Webhook = rcv.srv.URL + "/hook"
			retry, err := newNotifier(t, FormatJSON).Notify(context.Background(), n)
			if (err != nil) != tt.wantErr || retry != tt.wantRetry {
				t.Fatalf("Notify = %v, %v; want err %v, retry %v", retry, err, tt.wantErr, tt.wantRetry)
			}
			if err != nil && !errors.Is(err, ErrStatus) {
				t.Fatalf("err %v does not wrap ErrStatus", err)
			}
			bodies, badSig, ids := rcv.requests()
			if len(bodies) != tt.wantRequests {
				t.Fatalf("%d requests, want %d", len(bodies), tt.wantRequests)
			}
			if len(badSig) > 0 {
				t.Fatalf("receiver rejected signatures: %v", badSig)
			}
			for _, id := range ids {
				if id != n.ID {
					t.Fatalf("notice header %q, want %q", id, n.ID)
				}
			}
			var p Payload
			if err := json.Unmarshal(bodies[0], &p); err != nil {
				t.Fatal(err)
			}
			if p.Version != 1 || p.ID != n.ID || p.Kind != n.Kind || len(p.Alerts) != 1 || p.Lang != "bg" ||
				!strings.Contains(p.Text, "Иван Иванов") || !strings.Contains(p.Subject, "Негативна оценка") {
				t.Fatalf("payload %+v", p)
			}
		})
	}
}

func TestChatFormats(t *testing.T) {
	tests := []struct {
		format Format
		check  func(t *testing.T, body map[string]any)
	}{
		{FormatSlack, func(t *testing.T, b map[string]any) {
			if s, _ := b["text"].(string); !strings.Contains(s, "Негативная оценка") || !strings.Contains(s, "```") {
				t.Fatalf("slack text %q", s)
			}
		}},
		{FormatTeams, func(t *testing.T, b map[string]any) {
			att, _ := b["attachments"].([]any)
			if b["type"] != "message" || len(att) != 1 {
				t.Fatalf("teams body %v", b)
			}
			card := att[0].(map[string]any)["content"].(map[string]any)
			blocks := card["body"].([]any)
			if card["type"] != "AdaptiveCard" || !strings.Contains(blocks[1].(map[string]any)["text"].(string), "Сотрудник") {
				t.Fatalf("card %v", card)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.format), func(t *testing.T) {
			rcv := newReceiver(t)
			n := templates.Sample(templates.GroupNegative, "ru")
			n.Receiver.Webhook = rcv.srv.URL
			if retry, err := newNotifier(t, tt.format).Notify(context.Background(), n); err != nil || retry {
				t.Fatalf("Notify = %v, %v", retry, err)
			}
			bodies, badSig, _ := rcv.requests()
			if len(bodies) != 1 || len(badSig) != 0 {
				t.Fatalf("%d requests, signature errors %v", len(bodies), badSig)
			}
			var b map[string]any
			if err := json.Unmarshal(bodies[0], &b); err != nil {
				t.Fatal(err)
			}
			tt.check(t, b)
		})
	}
}

func TestNotifyStopsWithContext(t *testing.T) {
	rcv := newReceiver(t, 503, 503, 503)
	render, _ := templates.New(nil)
	w, err := New(Config{Secret: secret, Attempts: 3, MinBackoff: time.Hour, MaxBackoff: time.Hour}, render, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	n := templates.Sample(templates.GroupDevice, "en")
	n.Receiver.Webhook = rcv.srv.URL
	retry, err := w.Notify(ctx, n)
	if !retry || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Notify = %v, %v; want retry after the deadline", retry, err)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_780_000_000, 0)
	body := []byte(`{"id":"n-1"}`)
	good := Sign(secret, now.Unix(), body)
	ts := "1780000000"
	tests := []struct {
		name    string
		secret  []byte
		sig, ts string
		body    []byte
		now     time.Time
		want    error
	}{
		{"valid", secret, good, ts, body, now, nil},
		{"valid within tolerance", secret, good, ts, body, now.Add(4 * time.Minute), nil},
		{"other secret", []byte("x"), good, ts, body, now, ErrSignature},
		{"body changed", secret, good, ts, []byte(`{"id":"n-2"}`), now, ErrSignature},
		{"timestamp changed", secret, good, "1780000001", body, now, ErrSignature},
		{"no prefix", secret, strings.TrimPrefix(good, "sha256="), ts, body, now, ErrSignature},
		{"not hex", secret, "sha256=zz", ts, body, now, ErrSignature},
		{"bad timestamp", secret, good, "yesterday", body, now, ErrSignature},
		{"replayed later", secret, good, ts, body, now.Add(10 * time.Minute), ErrStale},
		{"from the future", secret, good, ts, body, now.Add(-10 * time.Minute), ErrStale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secret, tt.sig, tt.ts, tt.body, tt.now, 5*time.Minute)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestFormatFor(t *testing.T) {
	tests := []struct {
		f    Format
		url  string
		want Format
	}{
		{FormatAuto, "https://hooks.slack.com/services/T0/B0/x", FormatSlack},
		{FormatAuto, "https://acme.webhook.office.com/webhookb2/x", FormatTeams},
		{FormatAuto, "https://prod-12.westeurope.logic.azure.com/workflows/x", FormatTeams},
		{FormatAuto, "https://ops.example.org/semko", FormatJSON},
		{FormatAuto, "::", FormatJSON},
		{FormatSlack, "https://ops.example.org/semko", FormatSlack},
	}
	for _, tt := range tests {
		if got := FormatFor(tt.f, tt.url); got != tt.want {
			t.Errorf("FormatFor(%q, %q) = %q, want %q", tt.f, tt.url, got, tt.want)
		}
	}
}
