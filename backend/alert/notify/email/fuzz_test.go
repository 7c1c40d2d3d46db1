package email

import (
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCompose checks that whatever subject and text a template produces,
// a mail reader gets them back unchanged (the subject with its whitespace
// folded) and the headers stay parseable.
func FuzzCompose(f *testing.F) {
	f.Add("Негативна оценка (1 от 5) в Район Младост, Гише 3", "Клиент не е доволен.\nВреме: 18:42\n")
	f.Add("Эскалация «пульт не на связи»", "строка\n.\n..точка\n")
	f.Add("plain ascii", "=3D = sign\tand tab \n")
	f.Add(strings.Repeat("ж", 200), strings.Repeat("long line ", 100))
	from := &mail.Address{Name: "Семко", Address: "alerts@semko.test"}
	f.Fuzz(func(t *testing.T, subject, text string) {
		if !utf8.ValidString(subject) || !utf8.ValidString(text) || strings.ContainsRune(text, '\r') {
			t.Skip()
		}
		raw, err := Compose(from, Message{To: []string{"a@example.org"}, Subject: subject, Text: text, MessageID: subject})
		if err != nil {
			t.Fatal(err)
		}
		m, err := mail.ReadMessage(strings.NewReader(string(raw)))
		if err != nil {
			t.Fatalf("unparseable: %v\n%q", err, raw)
		}
		got, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.Join(strings.Fields(subject), " "); got != want {
			t.Fatalf("subject %q, want %q", got, want)
		}
		if _, err := mail.ParseAddress(m.Header.Get("From")); err != nil {
			t.Fatalf("From: %v", err)
		}
		body, err := io.ReadAll(newQPReader(m.Body))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.ReplaceAll(string(body), "\r\n", "\n"); got != text {
			t.Fatalf("body %q, want %q", got, text)
		}
	})
}

func newQPReader(r io.Reader) io.Reader { return quotedprintable.NewReader(r) }
