package survey

import (
	"errors"
	"testing"
	"time"
)

// FuzzDecode feeds the token decoder arbitrary strings (seeds in
// testdata/fuzz/FuzzDecode): it must never panic, must refuse everything
// not signed with the key, and what it accepts must encode back to itself.
func FuzzDecode(f *testing.F) {
	s := testSigner(f)
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	f.Add(s.Encode(Token{Kind: TokenAnswer, Ref: "0123456789abcdef0123456789abcdef", Score: 3, Expires: now.Add(time.Hour)}))
	f.Add(s.Encode(Token{Kind: TokenScan, Ref: "c-1", Score: NoScore, Expires: now.Add(time.Minute), Extra: []byte("nonce")}))
	f.Fuzz(func(t *testing.T, in string) {
		tk, err := s.Decode(in, now)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if again := s.Encode(tk); again != in {
			// Base64's last character may carry ignored bits; decoding the
			// re-encoding must give the same token.
			tk2, err := s.Decode(again, now)
			if err != nil || tk2.Ref != tk.Ref || tk2.Score != tk.Score || tk2.Kind != tk.Kind {
				t.Fatalf("accepted %q but re-encoding differs: %v", in, err)
			}
		}
	})
}
