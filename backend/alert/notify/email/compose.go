package email

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
)

// Message is one e-mail to send. Text is required; HTML, when set, is sent
// as an alternative that mail clients may prefer.
type Message struct {
	To      []string // addresses, optionally with names: "Мария <maria@example.org>"
	Subject string
	Text    string
	HTML    string
	// Date defaults to the time of sending.
	Date time.Time
	// MessageID without angle brackets. A notice's ID gives every retry of
	// the same notice the same Message-ID, so mail systems can drop
	// duplicates; empty means a random one.
	MessageID string
	// Attachments follow the text (scheduled reports send their PDF, CSV
	// or XLSX this way).
	Attachments []Attachment
}

// Attachment is a file sent with a message.
type Attachment struct {
	Name        string // file name shown to the reader
	ContentType string // e.g. application/pdf
	Data        []byte
}

// ErrAddress wraps an address that cannot be parsed (From or a recipient).
var ErrAddress = errors.New("bad mail address")

// Compose renders m as an RFC 5322 message from the given sender. Headers
// that may carry non-ASCII text use RFC 2047 encoded words; bodies are
// UTF-8 in quoted-printable, so any language passes 7-bit relays.
func Compose(from *mail.Address, m Message) ([]byte, error) {
	if len(m.To) == 0 {
		return nil, fmt.Errorf("%w: no recipients", ErrAddress)
	}
	to := make([]string, 0, len(m.To))
	for _, s := range m.To {
		a, err := mail.ParseAddress(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrAddress, s, err)
		}
		to = append(to, a.String())
	}
	date := m.Date
	if date.IsZero() {
		date = time.Now()
	}
	id := m.MessageID
	if id == "" {
		id = randomID()
	}
	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", from.String())
	header("To", strings.Join(to, ",\r\n "))
	header("Subject", encodeHeader(m.Subject))
	header("Date", date.Format(time.RFC1123Z))
	header("Message-ID", "<"+messageID(id, from.Address)+">")
	header("MIME-Version", "1.0")
	// RFC 3834: tells vacation responders not to answer a robot.
	header("Auto-Submitted", "auto-generated")
	if len(m.Attachments) > 0 {
		return composeMixed(&b, header, m)
	}
	if m.HTML == "" {
		header("Content-Type", "text/plain; charset=utf-8")
		header("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		if err := writeQP(&b, m.Text); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	mw := multipart.NewWriter(&b)
	header("Content-Type", "multipart/alternative; boundary="+mw.Boundary())
	b.WriteString("\r\n")
	for _, part := range []struct{ ctype, body string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.ctype + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, fmt.Errorf("compose: %w", err)
		}
		if err := writeQP(w, part.body); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	return b.Bytes(), nil
}

// composeMixed writes a multipart/mixed body: the text (and HTML as its
// alternative, nested) first, then each attachment in base64.
func composeMixed(b *bytes.Buffer, header func(k, v string), m Message) ([]byte, error) {
	mw := multipart.NewWriter(b)
	header("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
	b.WriteString("\r\n")
	if m.HTML == "" {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {"text/plain; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, fmt.Errorf("compose: %w", err)
		}
		if err := writeQP(w, m.Text); err != nil {
			return nil, err
		}
	} else {
		var inner bytes.Buffer
		alt := multipart.NewWriter(&inner)
		for _, part := range []struct{ ctype, body string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
			w, err := alt.CreatePart(textproto.MIMEHeader{
				"Content-Type":              {part.ctype + "; charset=utf-8"},
				"Content-Transfer-Encoding": {"quoted-printable"},
			})
			if err != nil {
				return nil, fmt.Errorf("compose: %w", err)
			}
			if err := writeQP(w, part.body); err != nil {
				return nil, err
			}
		}
		if err := alt.Close(); err != nil {
			return nil, fmt.Errorf("compose: %w", err)
		}
		w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"multipart/alternative; boundary=" + alt.Boundary()}})
		if err != nil {
			return nil, fmt.Errorf("compose: %w", err)
		}
		if _, err := w.Write(inner.Bytes()); err != nil {
			return nil, fmt.Errorf("compose: %w", err)
		}
	}
	for _, a := range m.Attachments {
		ctype := a.ContentType
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {mime.FormatMediaType(ctype, map[string]string{"name": a.Name})},
			"Content-Disposition":       {mime.FormatMediaType("attachment", map[string]string{"filename": a.Name})},
			"Content-Transfer-Encoding": {"base64"},
		})
		if err != nil {
			return nil, fmt.Errorf("compose: %w", err)
		}
		enc := base64.StdEncoding.EncodeToString(a.Data)
		for len(enc) > 76 {
			if _, err := io.WriteString(w, enc[:76]+"\r\n"); err != nil {
				return nil, fmt.Errorf("compose: %w", err)
			}
			enc = enc[76:]
		}
		if _, err := io.WriteString(w, enc+"\r\n"); err != nil {
			return nil, fmt.Errorf("compose: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	return b.Bytes(), nil
}

func writeQP(w interface{ Write([]byte) (int, error) }, s string) error {
	qp := quotedprintable.NewWriter(w)
	if _, err := qp.Write([]byte(s)); err != nil {
		return fmt.Errorf("compose body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return fmt.Errorf("compose body: %w", err)
	}
	return nil
}

// encodeHeader encodes s as RFC 2047 words when it is not plain ASCII, and
// folds long values so no header line grows past what relays accept. Line
// breaks in s are flattened: a header value is one logical line.
func encodeHeader(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	enc := mime.BEncoding.Encode("utf-8", s)
	if enc == s {
		return s
	}
	// The encoder separates encoded words with single spaces; a space
	// between encoded words is not part of the text, so folding there is
	// safe.
	return strings.ReplaceAll(enc, "?= =?", "?=\r\n =?")
}

// messageID makes id safe for a Message-ID's left part and adds the
// sender's domain on the right.
func messageID(id, fromAddr string) string {
	var b strings.Builder
	for _, r := range id {
		if r < 128 && (r == '-' || r == '.' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	left := strings.Trim(b.String(), ".")
	if left == "" {
		left = randomID()
	}
	domain := "semko.invalid"
	if _, d, ok := strings.Cut(fromAddr, "@"); ok && d != "" {
		domain = d
	}
	return left + "@" + domain
}

func randomID() string {
	var buf [12]byte
	_, _ = rand.Read(buf[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(buf[:])
}
