package mailintake

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		file                 string
		fromName, fromAddr   string
		subject, textContain string
		files                []string
	}{
		{"plain.eml", "Мария Петрова", "maria@example.org", "Отказана замяна", "Бележка № 4411", nil},
		{"multipart.eml", "Ivan Petrov", "ivan@example.org", "Broken kettle, receipt attached", "The kettle leaks.", []string{"receipt.png"}},
		{"cp1251.eml", "Олег Смирнов", "oleg@example.org", "Жалоба", "Консультант нагрубил.", nil},
		{"html-only.eml", "", "anna@example.org", "Thanks", "Thank you & well done", nil},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			if m.FromName != tc.fromName || m.FromAddr != tc.fromAddr || m.Subject != tc.subject || !strings.Contains(m.Text, tc.textContain) {
				t.Fatalf("got %+v", m)
			}
			if strings.Contains(m.Text, "alert(1)") || strings.Contains(m.Text, "<") {
				t.Fatalf("markup or script left in the text: %q", m.Text)
			}
			var names []string
			for _, f := range m.Files {
				names = append(names, f.Name)
				if len(f.Data) == 0 || !bytes.HasPrefix(f.Data, []byte("\x89PNG")) {
					t.Fatalf("attachment %s not decoded: %q", f.Name, f.Data)
				}
			}
			if strings.Join(names, ",") != strings.Join(tc.files, ",") {
				t.Fatalf("files %v, want %v (an inline logo is not an attachment)", names, tc.files)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	deep := "From: a@b.c\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
	for i := 1; i <= MaxDepth+1; i++ {
		deep += "--b" + string(rune('0'+i-1)) + "\r\nContent-Type: multipart/mixed; boundary=b" + string(rune('0'+i)) + "\r\n\r\n"
	}
	for name, raw := range map[string]string{
		"no headers":        "just text",
		"no from":           "Subject: x\r\n\r\nbody",
		"no boundary":       "From: a@b.c\r\nContent-Type: multipart/mixed\r\n\r\nbody",
		"too deeply nested": deep,
	} {
		if _, err := Parse(strings.NewReader(raw)); !errors.Is(err, ErrMessage) {
			t.Errorf("%s: err %v, want ErrMessage", name, err)
		}
	}
}

// FuzzParse: any input parses or fails with ErrMessage, never panics, and
// what it returns is bounded valid UTF-8. Seeds: the testdata messages.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Parse(bytes.NewReader(raw))
		if err != nil {
			if !errors.Is(err, ErrMessage) {
				t.Fatalf("error %v does not wrap ErrMessage", err)
			}
			return
		}
		if len([]rune(m.Text)) > MaxTextSize || len(m.Files) > MaxParts {
			t.Fatalf("limits not kept: %d runes, %d files", len([]rune(m.Text)), len(m.Files))
		}
		for _, s := range []string{m.Text, m.Subject, m.FromName} {
			if !utf8Valid(s) {
				t.Fatalf("invalid UTF-8 %q", s)
			}
		}
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }
