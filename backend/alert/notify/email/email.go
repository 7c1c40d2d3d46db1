// Package email sends alert notices over SMTP: STARTTLS (or implicit TLS),
// AUTH PLAIN or LOGIN, UTF-8 bodies in quoted-printable and RFC 2047
// subjects, so a notice in Bulgarian or Russian arrives readable.
//
// Failures are classified as in SMTP itself: 4xx replies, timeouts and
// refused connections may pass later (retry), 5xx replies, bad addresses
// and certificate problems will not (permanent).
package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TLSMode says how the connection to the mail server is protected.
type TLSMode string

const (
	// TLSStartTLS connects in plain text and upgrades with STARTTLS; a
	// server that does not offer it is an error (the default: port 587).
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit speaks TLS from the first byte (port 465).
	TLSImplicit TLSMode = "tls"
	// TLSNone sends in plain text: only for a local development sink.
	TLSNone TLSMode = "none"
)

// Errors of this package. Match them with errors.Is.
var (
	// ErrConfig wraps an unusable Config.
	ErrConfig = errors.New("email config")
	// ErrPermanent wraps failures that a retry will not fix: 5xx replies,
	// a server without the required STARTTLS or AUTH, a certificate that
	// does not verify.
	ErrPermanent = errors.New("permanent mail failure")
)

// Config says how to reach the mail server.
type Config struct {
	Host string
	Port int // default 587, or 465 with TLSImplicit
	// Username enables AUTH; Password comes from the environment, never a
	// file in the repository.
	Username, Password string
	// Auth is "plain", "login", or empty to pick what the server offers
	// (PLAIN first).
	Auth string
	// From is the sender, e.g. "Semko <alerts@example.org>".
	From string
	TLS  TLSMode // default TLSStartTLS
	// TLSConfig adds trusted roots or client certificates; ServerName
	// defaults to Host.
	TLSConfig *tls.Config
	// HelloName is the name sent with EHLO; default "localhost".
	HelloName string
	// Timeout bounds one whole delivery (connect to QUIT); default 30 s.
	Timeout time.Duration
}

// Sender delivers messages through one mail server. It holds no
// connection between messages (notices are rare), so it needs no Close and
// is safe for concurrent use.
type Sender struct {
	cfg  Config
	from *mail.Address
	log  *slog.Logger
}

// NewSender checks cfg and fills its defaults.
func NewSender(cfg Config, log *slog.Logger) (*Sender, error) {
	if cfg.Host == "" {
		return nil, fmt.Errorf("%w: host is required", ErrConfig)
	}
	if cfg.TLS == "" {
		cfg.TLS = TLSStartTLS
	}
	switch cfg.TLS {
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		return nil, fmt.Errorf("%w: tls %q is not starttls, tls or none", ErrConfig, cfg.TLS)
	}
	if cfg.Port == 0 {
		cfg.Port = 587
		if cfg.TLS == TLSImplicit {
			cfg.Port = 465
		}
	}
	cfg.Auth = strings.ToLower(cfg.Auth)
	if cfg.Auth != "" && cfg.Auth != "plain" && cfg.Auth != "login" {
		return nil, fmt.Errorf("%w: auth %q is not plain or login", ErrConfig, cfg.Auth)
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("%w: from %q: %v", ErrConfig, cfg.From, err)
	}
	if cfg.HelloName == "" {
		cfg.HelloName = "localhost"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sender{cfg: cfg, from: from, log: log}, nil
}

// Send delivers m. Recipients the server refuses permanently are skipped
// and reported in the error (wrapping ErrPermanent) while the others still
// get the message, because retrying would send it to them twice.
func (s *Sender) Send(ctx context.Context, m Message) (err error) {
	body, err := Compose(s.from, m)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	rcpts := make([]string, 0, len(m.To))
	for _, t := range m.To {
		a, _ := mail.ParseAddress(t) // Compose parsed them already
		rcpts = append(rcpts, a.Address)
	}

	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	addr := net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
	conn, err := s.dial(ctx, addr)
	if err != nil {
		return fmt.Errorf("smtp connect %s: %w", addr, classify(err))
	}
	// net/smtp knows no context: a deadline bounds every read and write,
	// and cancelling ctx expires it at once.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	c, err := smtp.NewClient(conn, s.cfg.Host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp greeting: %w", classify(err))
	}
	defer c.Close()
	if err := c.Hello(s.cfg.HelloName); err != nil {
		return fmt.Errorf("smtp ehlo: %w", classify(err))
	}
	if s.cfg.TLS == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("%w: %s does not offer STARTTLS", ErrPermanent, addr)
		}
		if err := c.StartTLS(s.tlsConfig()); err != nil {
			return fmt.Errorf("smtp starttls: %w", classify(err))
		}
	}
	if s.cfg.Username != "" {
		if err := s.auth(c); err != nil {
			return err
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return fmt.Errorf("smtp mail from: %w", classify(err))
	}
	var refused []error
	for _, r := range rcpts {
		if err := c.Rcpt(r); err != nil {
			err = classify(err)
			if !errors.Is(err, ErrPermanent) {
				return fmt.Errorf("smtp rcpt %s: %w", r, err)
			}
			refused = append(refused, fmt.Errorf("rcpt %s: %w", r, err))
		}
	}
	if len(refused) == len(rcpts) {
		return fmt.Errorf("smtp: every recipient refused: %w", errors.Join(refused...))
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp data: %w", classify(err))
	}
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("smtp data: %w", classify(err))
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp data: %w", classify(err))
	}
	// The message is accepted once DATA's reply came; a failed QUIT does
	// not make it undelivered.
	if err := c.Quit(); err != nil {
		s.log.Debug("smtp quit", "err", err)
	}
	if len(refused) > 0 {
		return fmt.Errorf("smtp: sent, but some recipients refused: %w", errors.Join(refused...))
	}
	return nil
}

func (s *Sender) tlsConfig() *tls.Config {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.cfg.TLSConfig != nil {
		tc = s.cfg.TLSConfig.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = s.cfg.Host
	}
	return tc
}

func (s *Sender) dial(ctx context.Context, addr string) (net.Conn, error) {
	if s.cfg.TLS == TLSImplicit {
		d := tls.Dialer{Config: s.tlsConfig()}
		return d.DialContext(ctx, "tcp", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

func (s *Sender) auth(c *smtp.Client) error {
	ok, offered := c.Extension("AUTH")
	if !ok {
		return fmt.Errorf("%w: server offers no AUTH", ErrPermanent)
	}
	mechs := strings.Fields(strings.ToLower(offered))
	mech := s.cfg.Auth
	if mech == "" {
		mech = "plain"
		if !slices.Contains(mechs, "plain") && slices.Contains(mechs, "login") {
			mech = "login"
		}
	}
	if !slices.Contains(mechs, mech) {
		return fmt.Errorf("%w: server offers AUTH %s, not %s", ErrPermanent, offered, mech)
	}
	var a smtp.Auth = plainAuth{user: s.cfg.Username, pass: s.cfg.Password, host: s.cfg.Host}
	if mech == "login" {
		a = &loginAuth{user: s.cfg.Username, pass: s.cfg.Password, host: s.cfg.Host}
	}
	if err := c.Auth(a); err != nil {
		return fmt.Errorf("smtp auth %s: %w", mech, classify(err))
	}
	return nil
}

// Retryable reports whether a Send error may pass on a later attempt.
func Retryable(err error) bool {
	return err != nil && !errors.Is(err, ErrPermanent)
}

// classify marks err as permanent when retrying cannot help.
func classify(err error) error {
	var tpe *textproto.Error
	if errors.As(err, &tpe) {
		if tpe.Code >= 500 {
			return fmt.Errorf("%w: %w", ErrPermanent, err)
		}
		return err
	}
	var (
		unknownCA *x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
	)
	if errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify) ||
		errors.Is(err, errInsecureAuth) {
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	return err
}
