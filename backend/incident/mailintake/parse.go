// Package mailintake turns e-mail into incidents: a small SMTP server
// inside the backend (github.com/emersion/go-smtp, already the house's
// SMTP library for the mail sink) takes messages for the configured intake
// addresses, parses them with the standard library (net/mail,
// mime/multipart, mime/quotedprintable; golang.org/x/text for the
// Cyrillic charsets mail still arrives in) and registers each as an
// incident with its attachments.
//
// Why an SMTP listener and not IMAP polling: delivery is the moment a
// refusal can be told to the sender (a 5xx with the reason, which their
// mail server turns into a bounce), nothing holds a mailbox password, and
// a test can deliver with net/smtp and see the incident at once. The
// organisation's mail server forwards the intake address here (an MX or a
// forwarding rule).
package mailintake

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"regexp"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/htmlindex"
)

// Limits on what one message may hold.
const (
	MaxParts    = 32       // MIME parts, nested ones included
	MaxDepth    = 4        // multipart nesting
	MaxTextSize = 64 << 10 // the text kept as the description
)

// ErrMessage wraps every parse failure: the message is malformed or over
// a limit.
var ErrMessage = errors.New("malformed message")

// File is one attachment.
type File struct {
	Name string
	Data []byte
}

// Message is what an incident takes from an e-mail.
type Message struct {
	FromName, FromAddr string
	Subject            string
	Text               string // the plain text, or the HTML's text
	Files              []File
}

// Parse reads one RFC 5322 message. Parts other than text and
// attachments (inline images of a signature, calendar invitations) are
// skipped; an attachment is a part with a file name.
func Parse(r io.Reader) (Message, error) {
	m, err := mail.ReadMessage(r)
	if err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrMessage, err)
	}
	var msg Message
	dec := mime.WordDecoder{CharsetReader: charsetReader}
	if s, err := dec.DecodeHeader(m.Header.Get("Subject")); err == nil {
		msg.Subject = clean(s, 500)
	}
	if from, err := (&mail.AddressParser{WordDecoder: &dec}).Parse(m.Header.Get("From")); err == nil {
		msg.FromName, msg.FromAddr = clean(from.Name, 200), from.Address
	} else {
		return Message{}, fmt.Errorf("%w: From: %v", ErrMessage, err)
	}
	p := parser{msg: &msg}
	if err := p.part(m.Header, m.Body, 0); err != nil {
		return Message{}, err
	}
	if p.plain != "" {
		msg.Text = p.plain
	} else {
		msg.Text = htmlText(p.html)
	}
	msg.Text = clean(msg.Text, MaxTextSize)
	return msg, nil
}

// header is what a part's headers offer: mail.Header and
// textproto.MIMEHeader both do.
type header interface{ Get(string) string }

type parser struct {
	msg         *Message
	parts       int
	plain, html string
}

func (p *parser) part(h header, body io.Reader, depth int) error {
	p.parts++
	if p.parts > MaxParts {
		return fmt.Errorf("%w: more than %d parts", ErrMessage, MaxParts)
	}
	ctype := h.Get("Content-Type")
	if ctype == "" {
		ctype = "text/plain; charset=us-ascii"
	}
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		mt, params = "application/octet-stream", map[string]string{}
	}
	if strings.HasPrefix(mt, "multipart/") {
		if depth >= MaxDepth {
			return fmt.Errorf("%w: multipart nested deeper than %d", ErrMessage, MaxDepth)
		}
		if params["boundary"] == "" {
			return fmt.Errorf("%w: multipart without boundary", ErrMessage)
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			part, err := mr.NextRawPart() // we decode transfer encodings ourselves, for every part alike
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%w: %v", ErrMessage, err)
			}
			if err := p.part(part.Header, part, depth+1); err != nil {
				return err
			}
		}
	}
	data, err := io.ReadAll(decodeTransfer(h.Get("Content-Transfer-Encoding"), body))
	if err != nil {
		return fmt.Errorf("%w: body: %v", ErrMessage, err)
	}
	if name := fileName(h, params); name != "" {
		p.msg.Files = append(p.msg.Files, File{Name: name, Data: data})
		return nil
	}
	switch mt {
	case "text/plain":
		if p.plain == "" {
			p.plain = toUTF8(data, params["charset"])
		}
	case "text/html":
		if p.html == "" {
			p.html = toUTF8(data, params["charset"])
		}
	}
	return nil
}

// fileName is the part's file name from Content-Disposition or the
// Content-Type's name parameter; inline parts without one are not files.
func fileName(h header, params map[string]string) string {
	dec := mime.WordDecoder{CharsetReader: charsetReader}
	if _, dp, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil && dp["filename"] != "" {
		if s, err := dec.DecodeHeader(dp["filename"]); err == nil {
			return s
		}
		return dp["filename"]
	}
	if params["name"] != "" {
		if s, err := dec.DecodeHeader(params["name"]); err == nil {
			return s
		}
		return params["name"]
	}
	return ""
}

func decodeTransfer(enc string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &stripSpace{r: r})
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	}
	return r
}

// stripSpace drops the line breaks base64 bodies are wrapped with.
type stripSpace struct{ r io.Reader }

func (s *stripSpace) Read(b []byte) (int, error) {
	for {
		n, err := s.r.Read(b)
		j := 0
		for _, c := range b[:n] {
			if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
				b[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

func charsetReader(charset string, r io.Reader) (io.Reader, error) {
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return nil, fmt.Errorf("charset %q: %w", charset, err)
	}
	return enc.NewDecoder().Reader(r), nil
}

// toUTF8 converts text in charset; an unknown charset keeps valid UTF-8
// and replaces the rest.
func toUTF8(data []byte, charset string) string {
	cs := strings.ToLower(charset)
	if cs != "" && cs != "utf-8" && cs != "us-ascii" {
		if r, err := charsetReader(cs, bytes.NewReader(data)); err == nil {
			if b, err := io.ReadAll(r); err == nil {
				return string(b)
			}
		}
	}
	return strings.ToValidUTF8(string(data), "\uFFFD")
}

var (
	tags       = regexp.MustCompile(`(?s)<(script|style)[^>]*>.*?</(script|style)>|<[^>]*>`)
	blankLines = regexp.MustCompile(`\n{3,}`)
	entities   = strings.NewReplacer("&nbsp;", " ", "&amp;", "&", "&lt;", "<", "&gt;", ">", "&quot;", `"`, "&#39;", "'")
)

// htmlText is a message's HTML as text: enough for a description, which
// pages show escaped anyway.
func htmlText(h string) string {
	h = strings.NewReplacer("<br>", "\n", "<br/>", "\n", "<br />", "\n", "</p>", "\n\n", "</div>", "\n").Replace(h)
	return entities.Replace(tags.ReplaceAllString(h, ""))
}

// clean keeps valid UTF-8 without control characters (but newlines and
// tabs), normalises line ends and bounds the length in runes.
func clean(s string, max int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\r\n", "\n")
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(blankLines.ReplaceAllString(s, "\n\n"))
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max])
	}
	return s
}
