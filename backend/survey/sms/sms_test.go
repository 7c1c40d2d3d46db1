package sms

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
)

// receiver is a gateway started by the test on loopback.
func receiver(t *testing.T, status int) (string, func() []Message, func() []string) {
	var mu sync.Mutex
	var got []Message
	var sigs []string
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m Message
		if json.Unmarshal(b, &m) == nil {
			mu.Lock()
			got = append(got, m)
			m := hmac.New(sha256.New, []byte("s3cret"))
			m.Write(b)
			if r.Header.Get("X-Semko-Signature") == "sha256="+hex.EncodeToString(m.Sum(nil)) {
				sigs = append(sigs, "ok")
			} else {
				sigs = append(sigs, "bad")
			}
			mu.Unlock()
		}
		w.WriteHeader(status)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/sms",
		func() []Message { mu.Lock(); defer mu.Unlock(); return append([]Message(nil), got...) },
		func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), sigs...) }
}

func TestWebhookDelivers(t *testing.T) {
	url, got, sigs := receiver(t, http.StatusAccepted)
	w, err := New(url, []byte("s3cret"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SendSMS(context.Background(), "+359881234567", "Колко вероятно е? https://s.example/s/x"); err != nil {
		t.Fatal(err)
	}
	m := got()
	if len(m) != 1 || m[0].To != "+359881234567" || m[0].Text != "Колко вероятно е? https://s.example/s/x" {
		t.Fatalf("received %+v", m)
	}
	if s := sigs(); len(s) != 1 || s[0] != "ok" {
		t.Fatalf("signature %v", s)
	}
}

func TestWebhookRefusals(t *testing.T) {
	url, _, _ := receiver(t, http.StatusBadRequest)
	w, _ := New(url, nil, 0)
	if err := w.SendSMS(context.Background(), "+359881234567", "x"); !errors.Is(err, ErrPermanent) {
		t.Fatalf("400: err = %v, want ErrPermanent", err)
	}
	url, _, _ = receiver(t, http.StatusServiceUnavailable)
	w, _ = New(url, nil, 0)
	if err := w.SendSMS(context.Background(), "+359881234567", "x"); err == nil || errors.Is(err, ErrPermanent) {
		t.Fatalf("503: err = %v, want a transient error", err)
	}
	if _, err := New("", nil, 0); err == nil {
		t.Fatal("empty URL accepted")
	}
}
