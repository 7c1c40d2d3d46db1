package mailintake

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image"
	"image/png"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/incident"
	"github.com/semko/semko/backend/incident/sqlite"
)

type fixture struct {
	srv   *Server
	desk  *incident.Desk
	files string
}

func start(t *testing.T, cfg incident.EmailConfig) fixture {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "incidents.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	filesDir := filepath.Join(dir, "files")
	files, err := incident.NewFiles(filesDir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	desk, err := incident.New(incident.Options{Store: store, Files: files})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = "127.0.0.1:0"
	cfg.Addresses = []incident.EmailAddress{
		{Address: "cs@shop.example", Org: "shop", Department: "retail"},
		{Address: "complaints@bank.example", Org: "bank", Site: "west", Department: "call_centre_email", Type: incident.TypeConsultation},
	}
	s, err := New(Options{Config: cfg, Desk: desk, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return fixture{srv: s, desk: desk, files: filesDir}
}

// send delivers raw with a real SMTP client.
func (f fixture) send(from, to string, raw []byte) error {
	return smtp.SendMail(f.srv.Addr(), nil, from, []string{to}, raw)
}

func (f fixture) incidents(t *testing.T) []incident.Incident {
	t.Helper()
	l, err := f.desk.List(context.Background(), access.Principal{Scope: access.Everything}, incident.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func scanPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func withAttachment(from, to, subject, text, name, ctype string, data []byte) []byte {
	b64 := base64.StdEncoding.EncodeToString(data)
	var lines []string
	for len(b64) > 76 {
		lines, b64 = append(lines, b64[:76]), b64[76:]
	}
	lines = append(lines, b64)
	return []byte(fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"+
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n"+
		"--b1\r\nContent-Type: %s\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n--b1--\r\n",
		from, to, subject, text, ctype, name, strings.Join(lines, "\r\n")))
}

func TestDeliveryBecomesIncident(t *testing.T) {
	f := start(t, incident.EmailConfig{})
	raw, _ := os.ReadFile(filepath.Join("testdata", "plain.eml"))
	if err := f.send("maria@example.org", "cs+mall@shop.example", raw); err != nil {
		t.Fatal(err)
	}
	scan := scanPNG(t, 1240, 1754)
	if err := f.send("ivan@example.org", "complaints@bank.example",
		withAttachment("Ivan Petrov <ivan@example.org>", "complaints@bank.example", "Rude consultant", "He would not answer.", "claim.png", "image/png", scan)); err != nil {
		t.Fatal(err)
	}
	l := f.incidents(t)
	if len(l) != 2 {
		t.Fatalf("%d incidents, want 2", len(l))
	}
	bank, shop := l[0], l[1]
	if shop.Org != "shop" || shop.Site != "mall" || shop.Channel != incident.ChannelEmail || shop.CustomerName != "Мария Петрова" ||
		shop.CustomerContact != "maria@example.org" || !strings.Contains(shop.Description, "Отказана замяна") || shop.RegisteredBy != Principal {
		t.Fatalf("shop incident %+v", shop)
	}
	if bank.Site != "west" || bank.Type != incident.TypeConsultation || len(bank.Attachments) != 1 || bank.Attachments[0].Width != 1240 {
		t.Fatalf("bank incident %+v", bank)
	}
	stored, err := os.ReadFile(filepath.Join(f.files, bank.Attachments[0].Hash))
	if err != nil || !bytes.Equal(stored, scan) {
		t.Fatalf("the scan was not kept as sent: %v", err)
	}
	if got := testutil.ToFloat64(f.srv.msgs.WithLabelValues("accepted")); got != 2 {
		t.Fatalf("accepted metric %v", got)
	}
}

func TestRefusals(t *testing.T) {
	f := start(t, incident.EmailConfig{MaxMessage: 64 << 10, PerAddressPerHour: 2})
	ok := []byte("From: a@example.org\r\nSubject: slow service\r\n\r\nWaited an hour.\r\n")
	cases := []struct {
		name, from, to string
		raw            []byte
		code           string
		result         string
	}{
		{"unknown address", "a@example.org", "nobody@shop.example", ok, "550", "unknown_address"},
		{"address without a site", "a@example.org", "cs@shop.example", ok, "550", "unknown_address"},
		{"too large", "b@example.org", "cs+mall@shop.example", append([]byte("From: b@example.org\r\nSubject: big\r\n\r\n"), bytes.Repeat([]byte(strings.Repeat("x", 76)+"\r\n"), 1000)...), "552", "too_large"},
		{"no comment at all", "c@example.org", "cs+mall@shop.example", []byte("From: c@example.org\r\n\r\n"), "550", "refused"},
		{"wrong attachment type", "d@example.org", "cs+mall@shop.example",
			withAttachment("d@example.org", "cs+mall@shop.example", "see page", "attached", "page.html", "text/html", []byte("<html><script>alert(1)</script></html>")), "550", "refused"},
		{"blurred scan", "e@example.org", "cs+mall@shop.example",
			withAttachment("e@example.org", "cs+mall@shop.example", "receipt", "attached", "r.png", "image/png", scanPNG(t, 200, 100)), "550", "refused"},
		{"malformed", "g@example.org", "cs+mall@shop.example", []byte("no headers at all"), "554", "malformed"},
		{"first from h", "h@example.org", "cs+mall@shop.example", ok, "", "accepted"},
		{"second from h", "h@example.org", "cs+mall@shop.example", ok, "", "accepted"},
		{"third from h: rate", "h@example.org", "cs+mall@shop.example", ok, "450", "rate"},
	}
	for _, c := range cases {
		before := testutil.ToFloat64(f.srv.msgs.WithLabelValues(c.result))
		err := f.send(c.from, c.to, c.raw)
		if c.code == "" {
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), c.code) {
			t.Fatalf("%s: err %v, want SMTP %s", c.name, err, c.code)
		}
		if got := testutil.ToFloat64(f.srv.msgs.WithLabelValues(c.result)); got != before+1 {
			t.Fatalf("%s: metric %s %v -> %v", c.name, c.result, before, got)
		}
	}
	if l := f.incidents(t); len(l) != 2 {
		t.Fatalf("%d incidents, want only the two accepted", len(l))
	}
	if left, _ := os.ReadDir(f.files); len(left) != 0 {
		t.Fatalf("refused messages left %d files", len(left))
	}
}
