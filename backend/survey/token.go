package survey

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// Token errors: a link whose signature does not match (edited, truncated,
// made up) and one past its expiry. Both wrap ErrInvalid.
var (
	ErrTampered = fmt.Errorf("%w: link signature does not match", ErrInvalid)
	ErrExpired  = fmt.Errorf("%w: link expired", ErrInvalid)
)

// TokenKind says what a signed token is for.
type TokenKind byte

const (
	// TokenAnswer is an invitation's link: Ref is the invitation, Score
	// the button (or NoScore), Extra the sealed address.
	TokenAnswer TokenKind = 'a'
	// TokenUnsubscribe: Ref is the address's keyed hash.
	TokenUnsubscribe TokenKind = 'u'
	// TokenCounter is the printed QR code of a counter: Ref is the
	// counter. It lives long (the code is on paper) and only opens a scan.
	TokenCounter TokenKind = 'c'
	// TokenScan is one scan of a counter's code: Ref is the counter,
	// Extra a random nonce; short-lived, answered once.
	TokenScan TokenKind = 's'
)

// NoScore is Token.Score for tokens that carry none.
const NoScore = -1

// Token is the signed content of a survey link.
type Token struct {
	Kind    TokenKind
	Ref     string
	Score   int
	Expires time.Time // second precision
	Extra   []byte
}

const (
	tokenVersion = 1
	macLen       = 16 // HMAC-SHA256 truncated: 128 bits is plenty for a link
	maxRef       = 200
	maxExtra     = 512
	// MaxTokenLen bounds an encoded token; longer input is refused unread.
	MaxTokenLen = 1200
)

// Signer signs and checks links, hashes addresses and seals the address a
// link carries back. Its keys derive from one secret (the data
// directory's survey key), each for one purpose.
type Signer struct {
	mac, addr []byte
	seal      cipher.AEAD
}

// NewSigner derives the keys from secret (at least 32 bytes).
func NewSigner(secret []byte) (*Signer, error) {
	if len(secret) < 32 {
		return nil, errors.New("survey secret shorter than 32 bytes")
	}
	derive := func(label string) []byte {
		h := hmac.New(sha256.New, secret)
		h.Write([]byte("semko-survey/" + label))
		return h.Sum(nil)
	}
	block, err := aes.NewCipher(derive("seal"))
	if err != nil {
		return nil, fmt.Errorf("survey seal key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("survey seal key: %w", err)
	}
	return &Signer{mac: derive("link"), addr: derive("address"), seal: aead}, nil
}

// Encode signs t as a URL-safe string.
func (s *Signer) Encode(t Token) string {
	b := make([]byte, 0, 16+len(t.Ref)+len(t.Extra)+macLen)
	b = append(b, tokenVersion, byte(t.Kind))
	b = binary.BigEndian.AppendUint64(b, uint64(t.Expires.Unix()))
	score := byte(0xff)
	if ValidScore(t.Score) {
		score = byte(t.Score)
	}
	b = append(b, score, byte(len(t.Ref)))
	b = append(b, t.Ref...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(t.Extra)))
	b = append(b, t.Extra...)
	b = append(b, s.sum(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Signer) sum(b []byte) []byte {
	h := hmac.New(sha256.New, s.mac)
	h.Write(b)
	return h.Sum(nil)[:macLen]
}

// Decode checks a token's signature, then its expiry against now. The
// signature is checked before anything is read from the content, so
// tampered input reveals nothing about the parser.
func (s *Signer) Decode(str string, now time.Time) (Token, error) {
	if len(str) > MaxTokenLen {
		return Token{}, fmt.Errorf("%w: too long", ErrTampered)
	}
	b, err := base64.RawURLEncoding.DecodeString(str)
	if err != nil || len(b) < 2+8+2+2+macLen {
		return Token{}, ErrTampered
	}
	body, mac := b[:len(b)-macLen], b[len(b)-macLen:]
	if !hmac.Equal(mac, s.sum(body)) {
		return Token{}, ErrTampered
	}
	t, err := parseBody(body)
	if err != nil {
		return Token{}, err
	}
	if !now.Before(t.Expires) {
		return t, ErrExpired
	}
	return t, nil
}

// parseBody reads a signed body; a malformed one can only come from a
// leaked key or a bug, and is reported as tampered all the same.
func parseBody(b []byte) (Token, error) {
	if b[0] != tokenVersion {
		return Token{}, fmt.Errorf("%w: version %d", ErrTampered, b[0])
	}
	t := Token{Kind: TokenKind(b[1])}
	exp := int64(binary.BigEndian.Uint64(b[2:10]))
	if exp < 0 || exp > 1<<40 {
		return Token{}, ErrTampered
	}
	t.Expires = time.Unix(exp, 0).UTC()
	t.Score = NoScore
	if b[10] != 0xff {
		if !ValidScore(int(b[10])) {
			return Token{}, ErrTampered
		}
		t.Score = int(b[10])
	}
	n := int(b[11])
	rest := b[12:]
	if n > maxRef || len(rest) < n+2 {
		return Token{}, ErrTampered
	}
	t.Ref, rest = string(rest[:n]), rest[n:]
	m := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if m > maxExtra || len(rest) != m {
		return Token{}, ErrTampered
	}
	if m > 0 {
		t.Extra = append([]byte(nil), rest...)
	}
	switch t.Kind {
	case TokenAnswer, TokenUnsubscribe, TokenCounter, TokenScan:
	default:
		return Token{}, ErrTampered
	}
	return t, nil
}

// NormaliseEmail returns the address part of an e-mail address, lower
// case. Lower-casing the local part is not what RFC 5321 promises, but it
// is what every mail system a customer uses does, and a rule keyed on the
// address must not be dodged by a capital letter.
func NormaliseEmail(s string) (string, error) {
	a, err := mail.ParseAddress(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("%w: e-mail address: %w", ErrInvalid, err)
	}
	addr := strings.ToLower(a.Address)
	if len(addr) > 254 || !strings.Contains(addr, "@") {
		return "", fmt.Errorf("%w: e-mail address", ErrInvalid)
	}
	return addr, nil
}

// NormalisePhone keeps a phone number's digits with a leading "+" for an
// international one ("00" becomes "+"); spaces, dashes, dots and brackets
// go.
func NormalisePhone(s string) (string, error) {
	s = strings.TrimSpace(s)
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return "", fmt.Errorf("%w: phone number", ErrInvalid)
		}
	}
	p := b.String()
	if strings.HasPrefix(p, "00") {
		p = "+" + p[2:]
	}
	if n := len(strings.TrimPrefix(p, "+")); n < 6 || n > 15 {
		return "", fmt.Errorf("%w: phone number length", ErrInvalid)
	}
	return p, nil
}

// AddressHash is the keyed hash the once-per-period rule and unsubscribes
// are decided on: without the key, a leaked database does not tell whether
// a given address was ever invited. addr must be normalised; kind keeps an
// e-mail address and a phone number apart.
func (s *Signer) AddressHash(kind Channel, addr string) string {
	h := hmac.New(sha256.New, s.addr)
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(addr))
	return hex.EncodeToString(h.Sum(nil))
}

// Seal encrypts an address for a link to carry, so the server need not
// keep it: it comes back only if the customer answers and agrees to be
// contacted.
func (s *Signer) Seal(addr string) []byte {
	nonce := make([]byte, s.seal.NonceSize())
	_, _ = rand.Read(nonce)
	return s.seal.Seal(nonce, nonce, []byte(addr), []byte("contact"))
}

// Open decrypts what Seal made.
func (s *Signer) Open(sealed []byte) (string, error) {
	n := s.seal.NonceSize()
	if len(sealed) < n {
		return "", ErrTampered
	}
	p, err := s.seal.Open(nil, sealed[:n], sealed[n:], []byte("contact"))
	if err != nil {
		return "", ErrTampered
	}
	return string(p), nil
}

// NewID returns a random identifier of 32 hex digits.
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
