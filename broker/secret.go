package broker

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Why two hash schemes.
//
// Device secrets are machine-generated random tokens of at least 128 bits.
// Guessing one is infeasible however fast the hash is, so a slow password
// hash buys nothing for them, while it would cost a lot when a whole fleet
// (tens of thousands of devices) reconnects at once after a broker restart:
// bcrypt at cost 10 is ~50 ms of CPU per connection, sha256 is well under a
// microsecond. Device secrets are therefore stored as a salted SHA-256
// ("sha256$<salt hex>$<digest hex>"); the salt keeps equal secrets from
// producing equal hashes and defeats precomputed tables.
//
// Human-chosen passwords (backend and observer accounts, typed by people) can
// be guessed, so for them VerifySecret also accepts bcrypt hashes, which make
// every guess expensive. Both comparisons run in constant time.

const (
	sha256Scheme = "sha256"
	saltLen      = 16
)

// ErrHashFormat means a stored hash is in none of the accepted formats.
var ErrHashFormat = errors.New("unsupported secret hash format")

// HashSecret returns "sha256$<salt hex>$<hex of sha256(salt||secret)>" with
// a fresh random 16-byte salt. Use it for machine-generated secrets only; hash
// human-chosen passwords with bcrypt (see the comment above).
func HashSecret(secret string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	return sha256Scheme + "$" + hex.EncodeToString(salt) + "$" + hex.EncodeToString(saltedDigest(salt, secret)), nil
}

// VerifySecret reports whether secret matches hash, which is either a
// HashSecret result or a bcrypt hash ("$2a$", "$2b$", "$2y$"). A malformed
// hash never matches.
func VerifySecret(hash, secret string) bool {
	if isBcrypt(hash) {
		return bcrypt.CompareHashAndPassword([]byte(hash), []byte(secret)) == nil
	}
	salt, want, err := parseSHA256(hash)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(saltedDigest(salt, secret), want) == 1
}

// checkHash validates the format of a stored hash without a secret, so that
// a typo in the credential list fails at load time instead of at login.
func checkHash(hash string) error {
	if isBcrypt(hash) {
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return fmt.Errorf("%w: bcrypt: %v", ErrHashFormat, err)
		}
		return nil
	}
	_, _, err := parseSHA256(hash)
	return err
}

func isBcrypt(hash string) bool {
	return strings.HasPrefix(hash, "$2a$") || strings.HasPrefix(hash, "$2b$") || strings.HasPrefix(hash, "$2y$")
}

func parseSHA256(hash string) (salt, digest []byte, err error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 3 || parts[0] != sha256Scheme {
		return nil, nil, ErrHashFormat
	}
	salt, err = hex.DecodeString(parts[1])
	if err != nil || len(salt) == 0 {
		return nil, nil, fmt.Errorf("%w: bad salt", ErrHashFormat)
	}
	digest, err = hex.DecodeString(parts[2])
	if err != nil || len(digest) != sha256.Size {
		return nil, nil, fmt.Errorf("%w: bad digest", ErrHashFormat)
	}
	return salt, digest, nil
}

func saltedDigest(salt []byte, secret string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(secret))
	return h.Sum(nil)
}
