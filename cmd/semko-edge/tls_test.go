package main

import "testing"

// The files themselves are internal/tlsconf's; the agent checks that its
// -cert-file and -key-file flags come together.
func TestClientTLS(t *testing.T) {
	for _, tc := range []struct{ name, cert, key string }{
		{"cert without key", "c.crt", ""},
		{"key without cert", "", "c.key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := clientTLS("", tc.cert, tc.key); err == nil || err.Error() != "-cert-file and -key-file go together" {
				t.Fatalf("err = %v, want the flags named", err)
			}
		})
	}
	if c, err := clientTLS("", "", ""); c != nil || err != nil {
		t.Errorf("no files: %v, %v; want nil, nil (system roots)", c, err)
	}
}
