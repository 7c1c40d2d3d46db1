package web

import (
	"slices"
	"strings"
	"testing"

	"github.com/semko/semko/backend/account"
)

// FuzzFromAcceptLanguage: any header gives one of the console's languages.
func FuzzFromAcceptLanguage(f *testing.F) {
	for _, s := range []string{"", "bg", "ru-RU,ru;q=0.9,en;q=0.5", "de;q=abc,bg;q=0.1", "*", ";;;,,,q="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if got := FromAcceptLanguage(h); !slices.Contains(account.Langs, got) {
			t.Fatalf("%q -> %q", h, got)
		}
	})
}

// FuzzSafeNext: a sign-in's "next" never leaves the site.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/devices", "//evil.example", "/\\evil.example", "https://evil.example", "", "/alerts/1?state=open", "/\t/evil.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\t\r\n") {
			t.Fatalf("%q -> %q leaves the site", next, got)
		}
	})
}
