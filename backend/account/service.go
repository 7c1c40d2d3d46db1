package account

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/semko/semko/backend/access"
)

// Errors of the service.
var (
	// ErrSignIn is every failed sign-in: wrong name and wrong password
	// answer the same, so names cannot be probed.
	ErrSignIn = errors.New("wrong name or password")
	// ErrThrottled refuses a sign-in after too many failures.
	ErrThrottled = errors.New("too many failed sign-ins, wait a few minutes")
	// ErrInvalid is a bad account field.
	ErrInvalid = errors.New("invalid")
)

// SessionCookie is the name of the console's session cookie.
const SessionCookie = "semko_session"

// TokenPrefix starts every personal API token, so a leaked one is easy
// to recognise (and to search for in logs and repositories).
const TokenPrefix = "semko_pat_"

// Options configure a Service.
type Options struct {
	Store Store
	// SessionTTL is how long a session lasts; default 12h.
	SessionTTL time.Duration
	// BcryptCost; default bcrypt.DefaultCost. Tests lower it.
	BcryptCost int
	// Throttle: after MaxFailures failed sign-ins within Window for one
	// account or one address, further attempts are refused without
	// checking the password until the window passes. Defaults 5 and 15m
	// per account, 4 times that per address.
	MaxFailures int
	Window      time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
}

// Service signs people in and finds the principal of a request.
type Service struct {
	opts    Options
	store   Store
	log     *slog.Logger
	signins *prometheus.CounterVec

	mu        sync.Mutex
	lastPurge time.Time // of expired sessions and old failures
}

// New returns a service over opts.Store.
func New(opts Options) (*Service, error) {
	if opts.Store == nil {
		return nil, errors.New("account: Store is required")
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.BcryptCost == 0 {
		opts.BcryptCost = bcrypt.DefaultCost
	}
	if opts.MaxFailures <= 0 {
		opts.MaxFailures = 5
	}
	if opts.Window <= 0 {
		opts.Window = 15 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		opts: opts, store: opts.Store, log: opts.Logger,
		signins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "semko_signin_total",
			Help: "Console sign-ins by result: ok, wrong (name or password), throttled (refused unchecked), disabled.",
		}, []string{"result"}),
	}
	for _, r := range []string{"ok", "wrong", "throttled", "disabled"} {
		s.signins.WithLabelValues(r)
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(s.signins); err != nil {
			return nil, fmt.Errorf("account metrics: %w", err)
		}
	}
	return s, nil
}

// Store is the service's store.
func (s *Service) Store() Store { return s.store }

// Langs are the console's languages.
var Langs = []string{"en", "bg", "ru"}

// ValidName reports a name that can be an account: 1 to 64 characters of
// letters, digits, '.', '-', '_' and '@'.
func ValidName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("%w: name must be 1 to 64 characters", ErrInvalid)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-_@", c)) {
			return fmt.Errorf("%w: name may hold letters, digits, '.', '-', '_' and '@' only", ErrInvalid)
		}
	}
	return nil
}

// ValidPassword reports a password too short or too long for bcrypt.
func ValidPassword(pw string) error {
	if utf8.RuneCountInString(pw) < 10 {
		return fmt.Errorf("%w: password must have at least 10 characters", ErrInvalid)
	}
	if len(pw) > 72 {
		return fmt.Errorf("%w: password must have at most 72 bytes", ErrInvalid)
	}
	return nil
}

func validate(a Account) error {
	if err := ValidName(a.Name); err != nil {
		return err
	}
	if !a.Role.Valid() {
		return fmt.Errorf("%w: unknown role %q", ErrInvalid, a.Role)
	}
	if a.Lang != "" && !validLang(a.Lang) {
		return fmt.Errorf("%w: language must be en, bg or ru", ErrInvalid)
	}
	if a.Role == access.Admin && !a.Scope.All {
		return fmt.Errorf("%w: an admin's scope is everything", ErrInvalid)
	}
	if !a.Scope.All && len(a.Scope.Orgs) == 0 && len(a.Scope.Sites) == 0 {
		return fmt.Errorf("%w: the scope needs at least one organisation or site", ErrInvalid)
	}
	return nil
}

func validLang(l string) bool {
	for _, x := range Langs {
		if x == l {
			return true
		}
	}
	return false
}

// Create adds an account with a password.
func (s *Service) Create(ctx context.Context, a Account, password string) error {
	if a.Role == access.Admin {
		a.Scope = access.Everything
	}
	if err := validate(a); err != nil {
		return err
	}
	if err := ValidPassword(password); err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.opts.BcryptCost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	a.Created = s.opts.Now().UTC()
	return s.store.CreateAccount(ctx, a, hash)
}

// Update changes an account's role, scope, language or disabled flag; a
// disabled account's sessions end at once.
func (s *Service) Update(ctx context.Context, a Account) error {
	if a.Role == access.Admin {
		a.Scope = access.Everything
	}
	if err := validate(a); err != nil {
		return err
	}
	if err := s.store.UpdateAccount(ctx, a); err != nil {
		return err
	}
	if a.Disabled {
		return s.store.DeleteSessions(ctx, a.Name)
	}
	return nil
}

// SetPassword replaces an account's password and ends all its sessions.
func (s *Service) SetPassword(ctx context.Context, name, password string) error {
	if err := ValidPassword(password); err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.opts.BcryptCost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	return s.store.SetPassword(ctx, name, hash)
}

// CheckPassword reports whether password is the account's (for a change
// of one's own password).
func (s *Service) CheckPassword(ctx context.Context, name, password string) error {
	_, hash, err := s.store.Account(ctx, name)
	if err != nil {
		return ErrSignIn
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		return ErrSignIn
	}
	return nil
}

// SignIn checks a name and password from addr and opens a session. It
// returns the cookie value (shown to the browser only) and the account.
// lang is the language to use when the account names none.
func (s *Service) SignIn(ctx context.Context, name, password, addr, lang string) (string, Account, error) {
	now := s.opts.Now()
	ip := hostOf(addr)
	s.purge(ctx, now)
	for _, k := range []struct {
		key   string
		limit int
	}{{"acct:" + name, s.opts.MaxFailures}, {"addr:" + ip, 4 * s.opts.MaxFailures}} {
		n, err := s.store.FailuresSince(ctx, k.key, now.Add(-s.opts.Window))
		if err != nil {
			return "", Account{}, err
		}
		if n >= k.limit {
			s.signins.WithLabelValues("throttled").Inc()
			return "", Account{}, ErrThrottled
		}
	}
	a, hash, err := s.store.Account(ctx, name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return "", Account{}, err
	}
	if err != nil {
		// Spend the time a check would, so a missing name answers as slowly
		// as a wrong password.
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
	}
	if err != nil || bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		s.signins.WithLabelValues("wrong").Inc()
		if err := s.store.AddFailure(ctx, now, "acct:"+name, "addr:"+ip); err != nil {
			return "", Account{}, err
		}
		return "", Account{}, ErrSignIn
	}
	if a.Disabled {
		s.signins.WithLabelValues("disabled").Inc()
		return "", Account{}, ErrSignIn
	}
	if err := s.store.ClearFailures(ctx, "acct:"+name); err != nil {
		return "", Account{}, err
	}
	id := randomString(32)
	if a.Lang != "" {
		lang = a.Lang
	}
	if !validLang(lang) {
		lang = "en"
	}
	if err := s.store.CreateSession(ctx, Session{
		IDHash: Hash(id), Account: a.Name, Created: now.UTC(), Expires: now.Add(s.opts.SessionTTL).UTC(), Addr: ip, Lang: lang,
	}); err != nil {
		return "", Account{}, err
	}
	s.signins.WithLabelValues("ok").Inc()
	a.Lang = lang
	return id, a, nil
}

// SignOut ends the session with the cookie value id.
func (s *Service) SignOut(ctx context.Context, id string) error {
	return s.store.DeleteSession(ctx, Hash(id))
}

// dummyHash is compared against for unknown names (see SignIn).
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("not a password of anyone"), bcrypt.MinCost)

// purge deletes expired sessions and failures older than the window, at
// most once a window, so neither table grows without end. Every replica
// purges; the deletes are idempotent.
func (s *Service) purge(ctx context.Context, now time.Time) {
	s.mu.Lock()
	due := now.Sub(s.lastPurge) >= s.opts.Window
	if due {
		s.lastPurge = now
	}
	s.mu.Unlock()
	if !due {
		return
	}
	if _, err := s.store.PurgeFailures(ctx, now.Add(-s.opts.Window)); err != nil {
		s.log.Warn("purge sign-in failures", "err", err)
	}
	if _, err := s.store.PurgeSessions(ctx, now); err != nil {
		s.log.Warn("purge sessions", "err", err)
	}
}

// Hash is the hex SHA-256 of a secret (session id or token): what the
// store keeps.
func Hash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// NewToken creates a personal API token for an account and returns the
// secret, shown once.
func (s *Service) NewToken(ctx context.Context, accountName, name string) (string, Token, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > 100 {
		return "", Token{}, fmt.Errorf("%w: a token needs a name of at most 100 characters", ErrInvalid)
	}
	secret := TokenPrefix + randomString(32)
	t := Token{ID: randomString(6), Account: accountName, Name: name, Hash: Hash(secret), Created: s.opts.Now().UTC()}
	if err := s.store.CreateToken(ctx, t); err != nil {
		return "", Token{}, err
	}
	return secret, t, nil
}

// SessionAuthenticator finds the principal of a request by its session
// cookie. A cookie that names no live session is treated as no
// credentials (the browser is sent to sign in again).
func (s *Service) SessionAuthenticator() access.Authenticator {
	return access.AuthenticatorFunc(func(r *http.Request) (access.Principal, bool, error) {
		c, err := r.Cookie(SessionCookie)
		if err != nil || c.Value == "" {
			return access.Principal{}, false, nil
		}
		se, err := s.store.Session(r.Context(), Hash(c.Value), s.opts.Now())
		if err != nil {
			return access.Principal{}, false, nil
		}
		a, _, err := s.store.Account(r.Context(), se.Account)
		if err != nil || a.Disabled {
			return access.Principal{}, false, nil
		}
		p := a.Principal()
		if p.Lang == "" {
			p.Lang = se.Lang
		}
		return p, true, nil
	})
}

// TokenAuthenticator finds the principal of a request by a personal API
// token in "Authorization: Bearer semko_pat_..."; other bearer tokens are
// left to the next authenticator. The token's last-used time is updated.
func (s *Service) TokenAuthenticator() access.Authenticator {
	return access.AuthenticatorFunc(func(r *http.Request) (access.Principal, bool, error) {
		scheme, secret, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || !strings.HasPrefix(secret, TokenPrefix) {
			return access.Principal{}, false, nil
		}
		t, err := s.store.TokenByHash(r.Context(), Hash(secret))
		if err != nil {
			return access.Principal{}, false, errors.New("unknown or revoked API token")
		}
		a, _, err := s.store.Account(r.Context(), t.Account)
		if err != nil || a.Disabled {
			return access.Principal{}, false, errors.New("the API token's account is disabled")
		}
		if err := s.store.TouchToken(r.Context(), t.ID, s.opts.Now().UTC()); err != nil {
			s.log.Warn("token last-used time not saved", "token", t.ID, "err", err)
		}
		p := a.Principal()
		p.Token = t.ID
		return p, true, nil
	})
}

// Audit records a change made by the request's principal. A failure to
// record is logged: the change is already made.
func (s *Service) Audit(r *http.Request, action, target, details string) {
	p, _ := access.FromContext(r.Context())
	e := Entry{Time: s.opts.Now().UTC(), Actor: p.Account, Token: p.Token, Addr: hostOf(r.RemoteAddr),
		Action: action, Target: target, Details: details}
	if err := s.store.AddAudit(context.WithoutCancel(r.Context()), e); err != nil {
		s.log.Error("audit entry not saved", "action", action, "target", target, "err", err)
	}
}

// SessionTTL is how long a session lasts.
func (s *Service) SessionTTL() time.Duration { return s.opts.SessionTTL }
