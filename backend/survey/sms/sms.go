// Package sms sends survey invitations by text message through an HTTP
// gateway: a generic webhook that any SMS provider's adapter (or the
// provider itself, if its API takes JSON) can receive. The engine sees
// only the SendSMS method, so a provider's own client can replace it.
//
// The request: POST <url> with Content-Type application/json and the body
// {"to": "+359881234567", "text": "..."}; with a secret, the header
// X-Semko-Signature: sha256=<hex HMAC-SHA256 of the body>. A 2xx answer
// is delivery to the gateway; 4xx is permanent; anything else is retried
// by the caller.
package sms

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ErrPermanent wraps a refusal by the gateway (4xx): resending the same
// message cannot help.
var ErrPermanent = errors.New("sms gateway refused the message")

// Webhook posts messages to a gateway URL.
type Webhook struct {
	URL    string
	Secret []byte // signs the body; empty sends unsigned
	Client *http.Client
}

// Message is the JSON body.
type Message struct {
	To   string `json:"to"`
	Text string `json:"text"`
}

// New returns a Webhook with a client that gives up after timeout
// (default 10 s).
func New(url string, secret []byte, timeout time.Duration) (*Webhook, error) {
	if url == "" {
		return nil, errors.New("sms: gateway URL is required")
	}
	return &Webhook{URL: url, Secret: secret, Client: &http.Client{Timeout: cmp.Or(timeout, 10*time.Second)}}, nil
}

// SendSMS posts one message.
func (w *Webhook) SendSMS(ctx context.Context, to, text string) error {
	body, err := json.Marshal(Message{To: to, Text: text})
	if err != nil {
		return fmt.Errorf("sms: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("sms: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if len(w.Secret) > 0 {
		m := hmac.New(sha256.New, w.Secret)
		m.Write(body)
		req.Header.Set("X-Semko-Signature", "sha256="+hex.EncodeToString(m.Sum(nil)))
	}
	resp, err := w.Client.Do(req)
	if err != nil {
		return fmt.Errorf("sms: post: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests:
		return fmt.Errorf("%w: %s", ErrPermanent, resp.Status)
	}
	return fmt.Errorf("sms: gateway answered %s", resp.Status)
}
