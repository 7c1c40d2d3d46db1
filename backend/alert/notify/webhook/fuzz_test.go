package webhook

import (
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary headers and bodies to Verify: it must never
// panic, and must accept only what Sign produced for that exact body.
func FuzzVerify(f *testing.F) {
	body := []byte(`{"version":1,"id":"n-1"}`)
	f.Add(Sign(secret, 1780000000, body), "1780000000", body)
	f.Add("sha256=", "0", []byte{})
	f.Add("sha256=00", "-1", []byte("x"))
	f.Add("md5=abc", " 1780000000 ", body)
	now := time.Unix(1780000000, 0)
	f.Fuzz(func(t *testing.T, sig, ts string, b []byte) {
		err := Verify(secret, sig, ts, b, now, 5*time.Minute)
		// Verify tolerates surrounding spaces and upper-case hex.
		sig = strings.ToLower(strings.TrimSpace(sig))
		if err == nil && sig != Sign(secret, 1780000000, b) {
			// Accepted: it must be the signature of a nearby timestamp.
			ok := false
			for d := int64(-300); d <= 300 && !ok; d++ {
				ok = sig == Sign(secret, 1780000000+d, b)
			}
			if !ok {
				t.Fatalf("accepted a signature Sign did not make: %q %q", sig, ts)
			}
		}
	})
}
