// Package mailsink is a tiny SMTP server for development: it accepts every
// message, from anyone, to anyone, and stores it as an .eml file in a
// directory, so `make run` can show the e-mails Semko would send without a
// real mail server. Never expose it beyond loopback: it has no
// authentication and no TLS by design.
package mailsink

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// Options configure a Sink.
type Options struct {
	// Addr to listen on, e.g. "127.0.0.1:2525"; ":0" ports pick a free one.
	Addr string
	// Dir receives one <time>-<n>.eml file per message; it is created.
	Dir string
	// MaxMessageBytes refuses larger messages (default 1 MiB).
	MaxMessageBytes int64
	// MaxMessages bounds the files one Sink writes (default 10,000); past
	// it messages are refused with a temporary error, as a full mailbox.
	MaxMessages int64
	Logger      *slog.Logger
}

// Sink is a running mail sink.
type Sink struct {
	opts   Options
	srv    *smtp.Server
	ln     net.Listener
	done   chan struct{}
	stored atomic.Int64 // counted once a file is in place
	mu     sync.Mutex   // serialises file naming
	seq    int64        // guarded by mu
}

// ErrFull is returned to clients once MaxMessages files were written.
var ErrFull = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "mail sink full"}

// Start listens and serves until Close.
func Start(opts Options) (*Sink, error) {
	if opts.Dir == "" {
		return nil, errors.New("mailsink: Dir is required")
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = 1 << 20
	}
	if opts.MaxMessages <= 0 {
		opts.MaxMessages = 10_000
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("mailsink dir: %w", err)
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("mailsink listen: %w", err)
	}
	s := &Sink{opts: opts, ln: ln, done: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{sink: s}, nil }))
	s.srv.Domain = "mailsink.local"
	s.srv.MaxMessageBytes = opts.MaxMessageBytes
	s.srv.MaxRecipients = 100
	s.srv.ReadTimeout, s.srv.WriteTimeout = time.Minute, time.Minute
	s.srv.ErrorLog = slogLogger{opts.Logger}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			opts.Logger.Warn("mailsink stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr is the address the sink listens on.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Stored is how many messages this sink has written.
func (s *Sink) Stored() int64 { return s.stored.Load() }

// Close stops accepting and waits for the server to end.
func (s *Sink) Close() error {
	err := s.srv.Close()
	// Close the listener ourselves too: go-smtp's Close misses a listener
	// Serve has not registered yet.
	s.ln.Close()
	<-s.done
	if err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		return fmt.Errorf("mailsink close: %w", err)
	}
	return nil
}

// store writes one message atomically (temporary file, then rename), so a
// reader never sees half a message. Return-Path and X-Original-To record
// the envelope, which the headers alone may not show (Bcc).
func (s *Sink) store(from string, to []string, r io.Reader) error {
	if s.stored.Load() >= s.opts.MaxMessages {
		return ErrFull
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "Return-Path: <%s>\r\nX-Original-To: %s\r\n", from, strings.Join(to, ", "))
	if _, err := io.Copy(&b, r); err != nil {
		return fmt.Errorf("mailsink read: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	name := fmt.Sprintf("%s-%04d.eml", time.Now().UTC().Format("20060102T150405Z"), s.seq)
	tmp, err := os.CreateTemp(s.opts.Dir, ".incoming-*")
	if err != nil {
		return fmt.Errorf("mailsink store: %w", err)
	}
	if _, err := tmp.Write(b.Bytes()); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("mailsink store: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("mailsink store: %w", err)
	}
	path := filepath.Join(s.opts.Dir, name)
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("mailsink store: %w", err)
	}
	s.stored.Add(1)
	s.opts.Logger.Info("mail stored", "file", path, "from", from, "to", strings.Join(to, ","))
	return nil
}

type session struct {
	sink *Sink
	from string
	to   []string
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error { se.from = from; return nil }
func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error   { se.to = append(se.to, to); return nil }
func (se *session) Data(r io.Reader) error                      { return se.sink.store(se.from, se.to, r) }
func (se *session) Reset()                                      { se.from, se.to = "", nil }
func (se *session) Logout() error                               { return nil }

// slogLogger routes go-smtp's connection errors to the injected logger.
type slogLogger struct{ log *slog.Logger }

func (l slogLogger) Printf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l slogLogger) Println(v ...any)               { l.log.Debug(fmt.Sprint(v...)) }
