package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/semko/semko/broker"
)

// FuzzLoadAccounts: whatever the credentials file holds, loading it
// returns accounts or an error, never panics, and what it returns the
// broker either takes or refuses with an error.
func FuzzLoadAccounts(f *testing.F) {
	for _, seed := range []string{
		"- username: semko-backend\n  hash: sha256$00112233445566778899aabbccddeeff$00\n  role: backend\n",
		"- username: kp-0001\n  hash: $2b$10$abcdefghijklmnopqrstuv\n  role: device\n",
		"[]", "", "- {}\n", "- username: x\n  role: admin\n", "a: b\n", "- username: [1, 2]\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "accounts.yaml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		list, err := loadAccounts(p, "")
		if err != nil {
			return
		}
		_, _ = broker.NewCredentials(list)
	})
}
