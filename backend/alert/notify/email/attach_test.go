package email

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
)

// An attachment travels as a base64 part after the text, byte for byte,
// with its name (Cyrillic included) as the reader's file name.
func TestComposeAttachments(t *testing.T) {
	data := bytes.Repeat([]byte("%PDF-1.4 \x00\xff binary "), 300)
	for _, html := range []string{"", "<p>Отчетът е приложен.</p>"} {
		raw, err := Compose(&mail.Address{Address: "semko@example.org"}, Message{
			To: []string{"maria@example.org"}, Subject: "Отчет", Text: "Отчетът е приложен.", HTML: html,
			Attachments: []Attachment{{Name: "отчет-2026-11.pdf", ContentType: "application/pdf", Data: data}},
		})
		if err != nil {
			t.Fatal(err)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/mixed" {
			t.Fatalf("content type %q (%v)", mt, err)
		}
		mr := multipart.NewReader(msg.Body, params["boundary"])
		first, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		if ct := first.Header.Get("Content-Type"); html == "" && !strings.HasPrefix(ct, "text/plain") || html != "" && !strings.HasPrefix(ct, "multipart/alternative") {
			t.Errorf("first part %q", ct)
		}
		att, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		if att.FileName() != "отчет-2026-11.pdf" {
			t.Errorf("file name %q", att.FileName())
		}
		got, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, att))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("attachment differs (%d bytes, %v)", len(got), err)
		}
		for _, line := range strings.Split(string(raw), "\r\n") {
			if len(line) > 998 {
				t.Fatalf("line of %d characters", len(line))
			}
		}
	}
}
