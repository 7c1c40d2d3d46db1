package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Headers of every webhook request.
const (
	// HeaderTimestamp is the Unix time in seconds when the request was
	// signed.
	HeaderTimestamp = "X-Semko-Timestamp"
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256, keyed with the
	// shared secret, of the timestamp, a dot and the raw body:
	// hex(hmac_sha256(secret, timestamp + "." + body)).
	HeaderSignature = "X-Semko-Signature"
	// HeaderNotice carries the notice id, the same on every retry, so a
	// receiver can drop duplicates.
	HeaderNotice = "X-Semko-Notice"
)

// Errors returned by Verify. Match them with errors.Is.
var (
	// ErrSignature means the signature is missing, malformed or wrong.
	ErrSignature = errors.New("bad webhook signature")
	// ErrStale means the timestamp is too far from now: possibly a replay.
	ErrStale = errors.New("stale webhook timestamp")
)

// Sign returns the HeaderSignature value for a body sent at unix time ts.
func Sign(secret []byte, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte("."))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify is what a receiver runs on a request: it checks the signature
// against the raw body in constant time and refuses timestamps further
// than tolerance from now (five minutes is a good choice), so a captured
// request cannot be replayed later.
func Verify(secret []byte, signature, timestamp string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(strings.TrimSpace(timestamp), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q", ErrSignature, timestamp)
	}
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(signature), "sha256=")
	if !ok {
		return fmt.Errorf("%w: want sha256=<hex>", ErrSignature)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: malformed digest", ErrSignature)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte("."))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return ErrSignature
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %v off", ErrStale, d.Round(time.Second))
	}
	return nil
}
