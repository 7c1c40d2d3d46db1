package survey

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

var testSecret = bytes.Repeat([]byte("k"), 32)

func testSigner(t testing.TB) *Signer {
	s, err := NewSigner(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenRoundTrip(t *testing.T) {
	s := testSigner(t)
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for _, tk := range []Token{
		{Kind: TokenAnswer, Ref: NewID(), Score: 0, Expires: now.Add(time.Hour), Extra: s.Seal("a@b.example")},
		{Kind: TokenAnswer, Ref: NewID(), Score: 10, Expires: now.Add(time.Hour)},
		{Kind: TokenScan, Ref: "c-1", Score: NoScore, Expires: now.Add(time.Minute), Extra: []byte("nonce-123456")},
		{Kind: TokenUnsubscribe, Ref: strings.Repeat("f", 64), Score: NoScore, Expires: now.Add(24 * time.Hour)},
	} {
		enc := s.Encode(tk)
		got, err := s.Decode(enc, now)
		if err != nil {
			t.Fatalf("Decode(%q): %v", enc, err)
		}
		if got.Kind != tk.Kind || got.Ref != tk.Ref || got.Score != tk.Score || !got.Expires.Equal(tk.Expires) || !bytes.Equal(got.Extra, tk.Extra) {
			t.Errorf("round trip: got %+v, want %+v", got, tk)
		}
	}
}

func TestTokenTamperedAndExpired(t *testing.T) {
	s := testSigner(t)
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	enc := s.Encode(Token{Kind: TokenAnswer, Ref: "inv", Score: 3, Expires: now.Add(time.Hour)})
	// Every single-character change must be refused.
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(enc) {
		for _, c := range []byte{alphabet[(strings.IndexByte(alphabet, enc[i])+1)%len(alphabet)]} {
			bad := enc[:i] + string(c) + enc[i+1:]
			if _, err := s.Decode(bad, now); !errors.Is(err, ErrTampered) {
				// The last character holds padding bits that base64 ignores.
				if i == len(enc)-1 && err == nil {
					continue
				}
				t.Fatalf("changed char %d: err = %v, want ErrTampered", i, err)
			}
		}
	}
	other, _ := NewSigner(bytes.Repeat([]byte("x"), 32))
	if _, err := other.Decode(enc, now); !errors.Is(err, ErrTampered) {
		t.Errorf("other key: err = %v", err)
	}
	if _, err := s.Decode(enc, now.Add(time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("expired: err = %v", err)
	}
	if _, err := s.Decode(strings.Repeat("A", MaxTokenLen+1), now); !errors.Is(err, ErrTampered) {
		t.Errorf("oversized: err = %v", err)
	}
}

func TestSealOpen(t *testing.T) {
	s := testSigner(t)
	sealed := s.Seal("maria@example.org")
	if bytes.Contains(sealed, []byte("maria")) {
		t.Fatal("sealed address readable")
	}
	got, err := s.Open(sealed)
	if err != nil || got != "maria@example.org" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := s.Open(sealed); err == nil {
		t.Fatal("changed seal opened")
	}
}

func TestNormaliseAndHash(t *testing.T) {
	s := testSigner(t)
	a, err := NormaliseEmail("  Maria Ivanova <Maria.Ivanova@Example.ORG> ")
	if err != nil || a != "maria.ivanova@example.org" {
		t.Fatalf("NormaliseEmail = %q, %v", a, err)
	}
	b, _ := NormaliseEmail("maria.ivanova@example.org")
	if s.AddressHash(ChannelEmail, a) != s.AddressHash(ChannelEmail, b) {
		t.Error("same address, different hashes")
	}
	if h := s.AddressHash(ChannelEmail, a); strings.Contains(h, "maria") || len(h) != 64 {
		t.Errorf("hash %q", h)
	}
	for _, bad := range []string{"", "not an address", "a@"} {
		if _, err := NormaliseEmail(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("NormaliseEmail(%q): err = %v", bad, err)
		}
	}
	p, err := NormalisePhone("0035 988 (123) 45-67")
	if err != nil || p != "+359881234567" {
		t.Fatalf("NormalisePhone = %q, %v", p, err)
	}
	if _, err := NormalisePhone("call me"); err == nil {
		t.Error("letters accepted as phone")
	}
}

func TestCleanComment(t *testing.T) {
	if c, err := CleanComment("  Чаках 40 минути, никой не обясни.  "); err != nil || c != "Чаках 40 минути, никой не обясни." {
		t.Errorf("plain comment: %q, %v", c, err)
	}
	for _, bad := range []string{"<script>alert(1)</script>", "x <IMG src=x onerror=alert(1)>", strings.Repeat("я", MaxComment+1), "a\x00b", "\xff\xfe"} {
		if _, err := CleanComment(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("CleanComment(%.30q): err = %v", bad, err)
		}
	}
	if _, err := CleanComment("<script>"); !errors.Is(err, ErrMarkup) {
		t.Error("script not reported as markup")
	}
}

func TestCategory(t *testing.T) {
	want := []Category{Detractor, Detractor, Detractor, Detractor, Detractor, Detractor, Detractor, Passive, Passive, Promoter, Promoter}
	for s, w := range want {
		if CategoryOf(s) != w {
			t.Errorf("CategoryOf(%d) = %s, want %s", s, CategoryOf(s), w)
		}
	}
	if r, err := CleanReasons([]string{"speed", "information", "speed"}, DefaultReasons); err != nil || len(r) != 2 || r[0] != "information" {
		t.Errorf("CleanReasons = %v, %v", r, err)
	}
	if _, err := CleanReasons([]string{"bribes"}, DefaultReasons); err == nil {
		t.Error("unknown reason accepted")
	}
}
