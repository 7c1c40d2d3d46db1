package email

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/notify/templates"
)

// parsed is a received message taken apart the way a mail client would.
type parsed struct {
	header     mail.Header
	subject    string
	text, html string
}

func parse(t *testing.T, raw []byte) parsed {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, raw)
	}
	var p parsed
	p.header = m.Header
	if p.subject, err = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(part) // quoted-printable is decoded by the reader
		if strings.HasPrefix(part.Header.Get("Content-Type"), "text/html") {
			p.html = string(b)
		} else {
			p.text = string(b)
		}
	}
	return p
}

func TestNotifierDeliversInEveryLanguage(t *testing.T) {
	render, err := templates.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		lang     string
		mechs    []string // offered by the server
		auth     string   // asked by the client
		group    templates.Group
		wantSubj string
		wantText []string
	}{
		{"bulgarian over PLAIN", "bg", nil, "", templates.GroupNegative,
			"Негативна оценка (1 от 5) в Район Младост, Гише 3", []string{"Иван Иванов", "4 мин 10 сек", "Сигнал №41"}},
		{"russian over LOGIN, server offers only LOGIN", "ru", []string{sasl.Login}, "", templates.GroupDevice,
			"[критично] Залипшая кнопка", []string{"Пульт оценки требует внимания", "kp-0013"}},
		{"english, LOGIN asked for", "en", nil, "login", templates.GroupEscalation,
			"Escalation (level 1)", []string{"Nobody acknowledged", "no heartbeat for 3h10m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startMailServer(t, serverOpts{mechs: tt.mechs})
			host, port := hostPort(t, srv.addr)
			s, err := NewSender(Config{
				Host: host, Port: port, Username: "semko", Password: "пароль-1", Auth: tt.auth,
				From: "Семко <alerts@semko.test>", TLSConfig: &tls.Config{RootCAs: srv.roots},
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			n := templates.Sample(tt.group, tt.lang)
			n.Receiver.Email = []string{"Мария Петрова <maria@example.org>", "deputy@example.org"}
			retry, err := NewNotifier(s, render).Notify(context.Background(), n)
			if err != nil || retry {
				t.Fatalf("Notify = %v, %v", retry, err)
			}
			msgs := srv.messages()
			if len(msgs) != 1 {
				t.Fatalf("server got %d messages, want 1", len(msgs))
			}
			got := msgs[0]
			if !got.OnTLS || got.User != "semko" || got.From != "alerts@semko.test" {
				t.Fatalf("tls %v user %q from %q", got.OnTLS, got.User, got.From)
			}
			if strings.Join(got.To, " ") != "maria@example.org deputy@example.org" {
				t.Fatalf("recipients %v", got.To)
			}
			p := parse(t, got.Data)
			if !strings.Contains(p.subject, tt.wantSubj) {
				t.Errorf("subject %q, want it to contain %q", p.subject, tt.wantSubj)
			}
			for _, w := range tt.wantText {
				if !strings.Contains(p.text, w) || !strings.Contains(p.html, w) {
					t.Errorf("text/html lack %q:\n%s", w, p.text)
				}
			}
			if id := p.header.Get("Message-ID"); id != "<"+n.ID+"@semko.test>" {
				t.Errorf("Message-ID %q", id)
			}
			if to := p.header.Get("To"); !strings.Contains(to, "maria@example.org") {
				t.Errorf("To %q", to)
			}
			if _, err := p.header.Date(); err != nil {
				t.Errorf("Date: %v", err)
			}
		})
	}
}

func TestSendImplicitTLS(t *testing.T) {
	srv := startMailServer(t, serverOpts{implicit: true})
	host, port := hostPort(t, srv.addr)
	s, err := NewSender(Config{
		Host: host, Port: port, TLS: TLSImplicit, Username: "semko", Password: srv.pass,
		From: "alerts@semko.test", TLSConfig: &tls.Config{RootCAs: srv.roots},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), Message{To: []string{"a@x.org"}, Subject: "Тест", Text: "тяло"}); err != nil {
		t.Fatal(err)
	}
	msgs := srv.messages()
	if len(msgs) != 1 || !msgs[0].OnTLS || msgs[0].User != "semko" {
		t.Fatalf("received %+v", msgs)
	}
}

func TestSendFailures(t *testing.T) {
	refuse := func(code int) func(string) error {
		return func(to string) error {
			if strings.HasPrefix(to, "bad") {
				return &smtp.SMTPError{Code: code, Message: "no"}
			}
			return nil
		}
	}
	tests := []struct {
		name      string
		opts      serverOpts
		pass      string
		to        []string
		noRoots   bool
		wantRetry bool
		wantSent  int // messages the server accepted
	}{
		{"wrong password is permanent", serverOpts{}, "wrong", []string{"a@example.org"}, false, false, 0},
		{"450 on a recipient retries", serverOpts{rcpt: refuse(450)}, "", []string{"a@x.org", "bad@x.org"}, false, true, 0},
		{"550 on every recipient is permanent", serverOpts{rcpt: refuse(550)}, "", []string{"bad@x.org"}, false, false, 0},
		{"550 on one recipient still delivers to the others", serverOpts{rcpt: refuse(550)}, "", []string{"a@x.org", "bad@x.org"}, false, false, 1},
		{"no STARTTLS offered is permanent", serverOpts{noTLS: true}, "", []string{"a@x.org"}, false, false, 0},
		{"untrusted certificate is permanent", serverOpts{}, "", []string{"a@x.org"}, true, false, 0},
		{"bad address is permanent", serverOpts{}, "", []string{"not an address"}, false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startMailServer(t, tt.opts)
			host, port := hostPort(t, srv.addr)
			pass := srv.pass
			if tt.pass != "" {
				pass = tt.pass
			}
			cfg := Config{Host: host, Port: port, Username: "semko", Password: pass, From: "alerts@semko.test"}
			if !tt.noRoots {
				cfg.TLSConfig = &tls.Config{RootCAs: srv.roots}
			}
			s, err := NewSender(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), Message{To: tt.to, Subject: "x", Text: "y"})
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if Retryable(err) != tt.wantRetry {
				t.Fatalf("Retryable(%v) = %v, want %v", err, !tt.wantRetry, tt.wantRetry)
			}
			if n := len(srv.messages()); n != tt.wantSent {
				t.Fatalf("server accepted %d messages, want %d", n, tt.wantSent)
			}
		})
	}
}

func TestSendUnreachableAndHungServers(t *testing.T) {
	// A port nobody listens on: connection refused, worth retrying.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedHost, closedPort := hostPort(t, ln.Addr().String())
	ln.Close()

	// A server that accepts and never greets: the context must end it.
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hung.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := hung.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		select {
		case c := <-accepted:
			c.Close()
		default:
		}
	})
	hungHost, hungPort := hostPort(t, hung.Addr().String())

	tests := []struct {
		name string
		host string
		port int
	}{
		{"connection refused", closedHost, closedPort},
		{"server never greets", hungHost, hungPort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSender(Config{Host: tt.host, Port: tt.port, From: "alerts@semko.test"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			err = s.Send(ctx, Message{To: []string{"a@x.org"}, Subject: "x", Text: "y"})
			if err == nil || !Retryable(err) {
				t.Fatalf("Send = %v, want a retryable error", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("Send took %v despite the context", d)
			}
		})
	}
}

func TestNotifierSkipsReceiverWithoutEmail(t *testing.T) {
	render, err := templates.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSender(Config{Host: "127.0.0.1", Port: 1, From: "a@b.c"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	retry, err := NewNotifier(s, render).Notify(context.Background(), alert.Notice{Receiver: alert.Receiver{Name: "x"}})
	if retry || err != nil {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
}

func TestNewSenderRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no host", Config{From: "a@b.c"}},
		{"bad from", Config{Host: "h", From: "nobody"}},
		{"bad tls mode", Config{Host: "h", From: "a@b.c", TLS: "ssl"}},
		{"bad auth", Config{Host: "h", From: "a@b.c", Auth: "cram-md5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewSender(tt.cfg, nil); !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
}
