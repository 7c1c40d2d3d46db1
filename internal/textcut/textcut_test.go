package textcut

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTrunc(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"short stays", "abc", 3, "abc"},
		{"ascii cut", "abcdef", 3, "abc…"},
		{"cyrillic on a boundary", "жжж", 4, "жж…"},
		{"cyrillic inside a character", "жжж", 3, "ж…"},
		{"four-byte character", "a😀b", 3, "a…"},
		{"nothing fits", "😀", 2, "…"},
		{"zero", "abc", 0, "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Trunc(tt.in, tt.n)
			if got != tt.want {
				t.Errorf("Trunc(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("Trunc(%q, %d) = %q is not valid UTF-8", tt.in, tt.n, got)
			}
		})
	}
}

func TestCutNeverSplitsACharacter(t *testing.T) {
	s := strings.Repeat("aж😀€", 10)
	for n := -1; n <= len(s)+1; n++ {
		got := Cut(s, n)
		if !utf8.ValidString(got) || len(got) > max(n, 0) && n < len(s) || !strings.HasPrefix(s, got) {
			t.Fatalf("Cut(s, %d) = %q", n, got)
		}
		if n >= 0 && n < len(s) && len(got) < n-3 {
			t.Fatalf("Cut(s, %d) dropped more than a character: %d bytes", n, len(got))
		}
	}
}

func FuzzTrunc(f *testing.F) {
	f.Add("жжж", 3)
	f.Add("a😀b", 2)
	f.Fuzz(func(t *testing.T, s string, n int) {
		got := Cut(s, n)
		if !strings.HasPrefix(s, got) || (n >= 0 && len(got) > n) {
			t.Fatalf("Cut(%q, %d) = %q", s, n, got)
		}
		if utf8.ValidString(s) && !utf8.ValidString(Trunc(s, n)) {
			t.Fatalf("Trunc(%q, %d) is not valid UTF-8", s, n)
		}
	})
}
