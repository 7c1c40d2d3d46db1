// Package webhook posts alert notices as JSON to HTTP endpoints: Semko's
// own document for integrations, or Slack- and Teams-shaped messages for
// chat channels. Every request is signed (see Sign and Verify) and retried
// with capped exponential backoff while the failure may pass.
//
// A receiver checks a request like this:
//
//	body, _ := io.ReadAll(r.Body)
//	err := webhook.Verify(secret, r.Header.Get(webhook.HeaderSignature),
//		r.Header.Get(webhook.HeaderTimestamp), body, time.Now(), 5*time.Minute)
//
// or, in any language: compute HMAC-SHA256 with the shared secret over the
// X-Semko-Timestamp value, a ".", and the raw body; compare its hex with
// the X-Semko-Signature value after "sha256="; reject old timestamps.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/notify/templates"
)

// ErrConfig wraps an unusable Config.
var ErrConfig = errors.New("webhook config")

// ErrStatus wraps a non-2xx reply.
var ErrStatus = errors.New("webhook refused")

// Config sets how notices are posted.
type Config struct {
	// Secret keys the signature. Empty sends no signature headers, which
	// receivers should refuse; set it in production.
	Secret []byte
	Format Format
	// Attempts bounds tries per notice (default 4); the alert pipeline
	// retries later if all fail recoverably.
	Attempts int
	// MinBackoff and MaxBackoff bound the wait between attempts (defaults
	// 500 ms and 30 s); a Retry-After within MaxBackoff is honoured.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one attempt (default 10 s).
	Timeout time.Duration
	// Client defaults to a client with no overall timeout (Timeout applies
	// per attempt through the context).
	Client *http.Client
	// Now is the signing clock, for tests.
	Now func() time.Time
}

// Notifier is the webhook channel of the alert manager. It is safe for
// concurrent use.
type Notifier struct {
	cfg    Config
	render *templates.Renderer
	log    *slog.Logger
}

var _ alert.Notifier = (*Notifier)(nil)

// New checks cfg and fills its defaults.
func New(cfg Config, render *templates.Renderer, log *slog.Logger) (*Notifier, error) {
	switch cfg.Format {
	case FormatAuto, FormatJSON, FormatSlack, FormatTeams:
	default:
		return nil, fmt.Errorf("%w: format %q is not json, slack or teams", ErrConfig, cfg.Format)
	}
	if render == nil {
		return nil, fmt.Errorf("%w: no templates", ErrConfig)
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 4
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{cfg: cfg, render: render, log: log}, nil
}

// Notify posts n to n.Receiver.Webhook; a receiver without one is nothing
// to do.
func (w *Notifier) Notify(ctx context.Context, n alert.Notice) (retry bool, err error) {
	url := n.Receiver.Webhook
	if url == "" {
		return false, nil
	}
	m, err := w.render.Render(n)
	if err != nil {
		return false, fmt.Errorf("webhook %s: %w", n.Receiver.Name, err)
	}
	body, err := encode(FormatFor(w.cfg.Format, url), n, m)
	if err != nil {
		return false, fmt.Errorf("webhook %s: encode: %w", n.Receiver.Name, err)
	}
	return w.Post(ctx, url, n.ID, body)
}

// Post sends body to url, signed, retrying recoverable failures (network
// errors, 408, 429, 5xx) up to Attempts times. retry reports whether the
// last failure was recoverable.
func (w *Notifier) Post(ctx context.Context, url, id string, body []byte) (retry bool, err error) {
	for attempt := 1; ; attempt++ {
		var wait time.Duration
		retry, wait, err = w.once(ctx, url, id, body)
		if err == nil || !retry || attempt >= w.cfg.Attempts {
			if err != nil {
				err = fmt.Errorf("webhook %s after %d attempts: %w", redact(url), attempt, err)
			}
			return retry, err
		}
		if wait <= 0 || wait > w.cfg.MaxBackoff {
			wait = w.backoff(attempt)
		}
		w.log.Debug("webhook retry", "url", redact(url), "attempt", attempt, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return true, fmt.Errorf("webhook %s: %w (last: %v)", redact(url), ctx.Err(), err)
		case <-t.C:
		}
	}
}

// backoff is MinBackoff doubled per attempt, capped, with jitter so that
// many notices failing together do not retry in lockstep.
func (w *Notifier) backoff(attempt int) time.Duration {
	d := w.cfg.MinBackoff << min(attempt-1, 20)
	if d > w.cfg.MaxBackoff || d <= 0 {
		d = w.cfg.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

// once makes one attempt. wait is the server's Retry-After, if any.
func (w *Notifier) once(ctx context.Context, url, id string, body []byte) (retry bool, wait time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, 0, fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "semko-notify/1")
	if id != "" {
		req.Header.Set(HeaderNotice, id)
	}
	if len(w.cfg.Secret) > 0 {
		ts := w.cfg.Now().Unix()
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(HeaderSignature, Sign(w.cfg.Secret, ts, body))
	}
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return true, 0, err
	}
	defer resp.Body.Close()
	// Read a little of the reply for the error message, and drain it so
	// the connection can be reused.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, 0, nil
	}
	err = fmt.Errorf("%w: %s: %s", ErrStatus, resp.Status, bytes.TrimSpace(snippet))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout,
		resp.StatusCode >= 500:
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s >= 0 {
			wait = time.Duration(s) * time.Second
		}
		return true, wait, err
	}
	return false, 0, err
}

// redact keeps a URL's scheme and host for logs: webhook URLs often carry
// their secret in the path (Slack, Teams).
func redact(raw string) string {
	req, err := http.NewRequest(http.MethodPost, raw, nil)
	if err != nil || req.URL.Host == "" {
		return "(webhook url)"
	}
	return req.URL.Scheme + "://" + req.URL.Host + "/..."
}
