package mailsink

import (
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSinkStoresEveryMessage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail")
	s, err := Start(Options{Addr: "127.0.0.1:0", Dir: dir, MaxMessages: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	tests := []struct {
		name    string
		to      []string
		body    string
		wantErr bool
	}{
		{"one recipient", []string{"maria@example.org"}, "Subject: =?utf-8?b?0J/RgNC40LLQtdGC?=\r\n\r\nЗдравейте\r\n", false},
		{"two recipients", []string{"a@example.org", "b@example.org"}, "Subject: two\r\n\r\nbody\r\n", false},
		{"refused once full", []string{"c@example.org"}, "Subject: three\r\n\r\nbody\r\n", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := smtp.SendMail(s.Addr(), nil, "semko@localhost", tt.to, []byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("SendMail: %v, want error %v", err, tt.wantErr)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
			want := min(i+1, 2)
			if len(files) != want {
				t.Fatalf("%d files, want %d", len(files), want)
			}
			if tt.wantErr {
				return
			}
			b, err := os.ReadFile(files[len(files)-1])
			if err != nil {
				t.Fatal(err)
			}
			got := string(b)
			if !strings.HasPrefix(got, "Return-Path: <semko@localhost>\r\nX-Original-To: "+strings.Join(tt.to, ", ")+"\r\n") ||
				!strings.Contains(got, tt.body) {
				t.Fatalf("stored:\n%s", got)
			}
		})
	}
	if s.Stored() != 2 {
		t.Fatalf("Stored = %d", s.Stored())
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".incoming-*")); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
}

func TestStartRejects(t *testing.T) {
	if _, err := Start(Options{Addr: "127.0.0.1:0"}); err == nil {
		t.Fatal("Start without Dir succeeded")
	}
	s, err := Start(Options{Addr: "127.0.0.1:0", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Start(Options{Addr: s.Addr(), Dir: t.TempDir()}); err == nil {
		t.Fatal("second sink on a busy port started")
	}
}
