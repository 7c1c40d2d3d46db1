package broker

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestVerifySecret(t *testing.T) {
	salted, err := HashSecret("token-1")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := HashSecret("token-1")
	if salted == again {
		t.Error("two hashes of one secret are equal: salt not random")
	}
	bc := func(cost int) string {
		h, err := bcrypt.GenerateFromPassword([]byte("Correct Horse"), cost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	b2a := bc(bcrypt.MinCost)
	tests := []struct {
		name, hash, secret string
		want               bool
	}{
		{"salted sha256", salted, "token-1", true},
		{"salted sha256, wrong secret", salted, "token-2", false},
		{"salted sha256, empty secret", salted, "", false},
		{"bcrypt $2a$", b2a, "Correct Horse", true},
		{"bcrypt $2b$", "$2b$" + strings.TrimPrefix(b2a, "$2a$"), "Correct Horse", true},
		{"bcrypt $2y$", "$2y$" + strings.TrimPrefix(b2a, "$2a$"), "Correct Horse", true},
		{"bcrypt, wrong secret", b2a, "correct horse", false},
		{"plain text is not a hash", "token-1", "token-1", false},
		{"empty hash", "", "", false},
		{"truncated digest", salted[:len(salted)-2], "token-1", false},
		{"no salt", "sha256$$" + strings.Repeat("0", 64), "", false},
		{"other scheme", "md5$00$" + strings.Repeat("0", 64), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifySecret(tt.hash, tt.secret); got != tt.want {
				t.Errorf("VerifySecret = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewCredentialsValidates(t *testing.T) {
	good, _ := HashSecret("x")
	tests := []struct {
		name string
		list []Credential
		want error
	}{
		{"ok", []Credential{{Username: "kp-1", Hash: good, Role: RoleDevice}, {Username: "svc", Hash: good, Role: RoleBackend}}, nil},
		{"no role", []Credential{{Username: "kp-1", Hash: good, Role: 0}}, ErrRole},
		{"empty username", []Credential{{Username: "", Hash: good, Role: RoleBackend}}, ErrCredential},
		{"device id with a slash", []Credential{{Username: "kp/1", Hash: good, Role: RoleDevice}}, ErrCredential},
		{"plain-text secret", []Credential{{Username: "kp-1", Hash: "secret", Role: RoleDevice}}, ErrCredential},
		{"bad bcrypt", []Credential{{Username: "svc", Hash: "$2a$10$short", Role: RoleBackend}}, ErrCredential},
		{"duplicate", []Credential{{Username: "kp-1", Hash: good, Role: RoleDevice}, {Username: "kp-1", Hash: good, Role: RoleObserver}}, ErrCredential},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewCredentials(tt.list)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestCredentialsReplace(t *testing.T) {
	h, _ := HashSecret("x")
	c, err := NewCredentials([]Credential{{Username: "kp-1", Hash: h, Role: RoleDevice}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Replace([]Credential{{Username: "kp-1", Hash: "bad", Role: RoleDevice}}); err == nil {
		t.Fatal("Replace accepted a bad list")
	}
	if _, ok := c.lookup("kp-1"); !ok {
		t.Fatal("a failed Replace changed the set")
	}
	if err := c.Replace([]Credential{{Username: "kp-2", Hash: h, Role: RoleDevice}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.lookup("kp-1"); ok || c.Len() != 1 {
		t.Fatal("Replace kept a removed account")
	}
}

func TestRoleText(t *testing.T) {
	for _, r := range []Role{RoleDevice, RoleBackend, RoleObserver} {
		text, err := r.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Role
		if err := back.UnmarshalText(text); err != nil || back != r {
			t.Errorf("%v round trip: %v %v", r, back, err)
		}
	}
	var r Role
	if err := r.UnmarshalText([]byte("admin")); !errors.Is(err, ErrRole) {
		t.Errorf("UnmarshalText(admin) = %v", err)
	}
}

func FuzzVerifySecret(f *testing.F) {
	salted, _ := HashSecret("seed")
	f.Add(salted, "seed")
	f.Add("$2a$04$abcdefghijklmnopqrstuuJ7m1t3D7rQ9eF1cTq8b3v0yDq6n2e1W", "x")
	f.Add("sha256$zz$00", "")
	f.Add("sha256$$$", "a")
	f.Fuzz(func(t *testing.T, hash, secret string) {
		ok := VerifySecret(hash, secret)
		if ok && checkHash(hash) != nil {
			t.Fatalf("verified against a hash checkHash refuses: %q", hash)
		}
		if strings.HasPrefix(hash, sha256Scheme+"$") && ok && !VerifySecret(hash, secret) {
			t.Fatal("not deterministic")
		}
	})
}
