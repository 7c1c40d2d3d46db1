package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/semko/semko/backend/survey"
	"github.com/semko/semko/backend/survey/engine"
	"github.com/semko/semko/backend/survey/internal/surveytest"
	"github.com/semko/semko/backend/survey/sms"
)

// TestSMSInvitation sends an invitation through the webhook adapter to a
// gateway started here; its link opens the score page and answers once.
func TestSMSInvitation(t *testing.T) {
	var mu sync.Mutex
	var got []sms.Message
	status := http.StatusOK
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m sms.Message
		_ = json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		w.WriteHeader(status)
	}))
	t.Cleanup(gw.Close)
	hook, err := sms.New(gw.URL, []byte("k"), 0)
	if err != nil {
		t.Fatal(err)
	}
	env := surveytest.New(t, func(o *engine.Options) { o.Mailer = nil; o.SMS = hook })
	ctx := context.Background()
	inv, err := env.Engine.Invite(ctx, survey.Contact{Counter: "c1", Phone: "0888 12 34 56", Lang: "ru", Email: "ignored@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	m := got[0]
	mu.Unlock()
	if inv.Channel != survey.ChannelSMS || m.To != "0888123456" || !strings.Contains(m.Text, "порекомендуете Община Тест") {
		t.Fatalf("sms %+v, invitation %+v", m, inv)
	}
	i := strings.Index(m.Text, "/s/")
	tok, err := env.Engine.Signer().Decode(m.Text[i+3:], env.Now())
	if err != nil || tok.Score != survey.NoScore {
		t.Fatalf("sms link: %+v %v", tok, err)
	}
	if a, isNew, err := env.Engine.AnswerLink(ctx, tok, 8); err != nil || !isNew || a.Channel != survey.ChannelSMS {
		t.Fatalf("answer: %+v %v %v", a, isNew, err)
	}
	// A refusing gateway: no invitation counted, the address may be tried again.
	mu.Lock()
	status = http.StatusBadRequest
	mu.Unlock()
	if _, err := env.Engine.Invite(ctx, survey.Contact{Counter: "c1", Phone: "+359 88 765 4321"}); !errors.Is(err, sms.ErrPermanent) {
		t.Fatalf("refused: %v", err)
	}
	mu.Lock()
	status = http.StatusOK
	mu.Unlock()
	if _, err := env.Engine.Invite(ctx, survey.Contact{Counter: "c1", Phone: "+359 88 765 4321"}); err != nil {
		t.Fatalf("after a refusal: %v", err)
	}
}
