package backend_test

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/png"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"net/smtp"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/calendar"
	"github.com/semko/semko/backend/incident"
	"github.com/semko/semko/backend/incident/incidentapi"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/mailsink"
	"github.com/semko/semko/internal/testwait"
)

// incidentConfig is a backend whose retail department has two seconds to
// act, on a calendar that is always open, so a deadline passes while the
// test waits; overdue incidents go to Customer Service's lead in
// Bulgarian, through a real SMTP server.
func incidentConfig(t *testing.T, sinkAddr string) (backend.Config, *fleet.Model) {
	t.Helper()
	model := fleet.Generate(fleet.Spec{Seed: 21, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 1, OperatorsPerSite: 1})
	cfg := newTestConfig(t, model, nil)
	host, portS, _ := net.SplitHostPort(sinkAddr)
	port, _ := strconv.Atoi(portS)
	cfg.Notify.SMTP = backend.SMTPConfig{Host: host, Port: port, TLS: "none", From: "Semko <semko@localhost>"}
	cfg.Alerts.Tick = 50 * time.Millisecond
	cfg.Alerts.Calendars.Default = calendar.Spec{Hours: map[string]string{"mon-sun": "00:00-24:00"}}
	cfg.Alerts.Receivers = []alert.Receiver{{Name: "cs-lead", Email: []string{"cs-lead@example.org"}, Lang: "bg"}}
	cfg.Alerts.Route = alert.RouteConfig{Routes: []alert.RouteConfig{{
		Match: alert.Matchers{"kind": string(alert.KindIncidentOverdue)}, Receivers: []string{"cs-lead"},
		GroupWait: 50 * time.Millisecond, GroupInterval: time.Hour,
	}}}
	cfg.Incidents = incident.Config{
		Departments: []incident.Department{{Name: "retail", Title: "Retail shop", MaxTime: 2 * time.Second, Accounts: []string{"maria"}}},
		CheckEvery:  100 * time.Millisecond, BaseURL: "https://semko.example.org",
	}
	return cfg, model
}

// TestIncidentEscalatesByMail: an incident registered and passed on
// through the API misses its deadline; the alert routing sends the notice
// with the incident's link, in the receiver's language, to a real SMTP
// server; closing it resolves the alert.
func TestIncidentEscalatesByMail(t *testing.T) {
	dir := t.TempDir()
	sink, err := mailsink.Start(mailsink.Options{Addr: "127.0.0.1:0", Dir: filepath.Join(dir, "mail")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	cfg, model := incidentConfig(t, sink.Addr())
	app := newApp(t, cfg, testLogger(t))
	stop := startApp(t, app)
	t.Cleanup(func() { _ = stop() })
	base := "http://" + app.HTTPAddr()
	site := model.Orgs[0].Sites[0]

	var created incidentapi.IncidentAnswer
	apiDo(t, http.MethodPost, base+"/api/v1/incidents", `{"org":"`+site.Org+`","site":"`+site.ID+`","department":"retail",
		"channel":"phone","type":"poor_service","remark_no":"5","description":"Nobody called back about the repair"}`, http.StatusCreated, &created)
	id := strconv.FormatInt(created.Incident.ID, 10)
	apiDo(t, http.MethodPost, base+"/api/v1/incidents/"+id+"/pass", `{"comment":"please call the customer today"}`, http.StatusOK, nil)

	testwait.For(t, "the overdue notice in the mail sink", func() bool { return sink.Stored() > 0 })
	files, _ := filepath.Glob(filepath.Join(dir, "mail", "*.eml"))
	subject, text := readMail(t, files[0])
	if !strings.Contains(subject, "Инцидент №"+id) || !strings.Contains(subject, "просрочен") {
		t.Errorf("subject %q, want the incident in Bulgarian", subject)
	}
	if !strings.Contains(text, "https://semko.example.org/incidents/"+id) || !strings.Contains(text, "maria") {
		t.Errorf("notice without the link or the responsible person:\n%s", text)
	}

	var got incidentapi.IncidentAnswer
	apiDo(t, http.MethodGet, base+"/api/v1/incidents/"+id, "", http.StatusOK, &got)
	if !got.Incident.Overdue || got.Incident.Late != 1 {
		t.Fatalf("incident after the deadline: %+v", got.Incident)
	}
	apiDo(t, http.MethodPost, base+"/api/v1/incidents/"+id+"/close", `{"outcome":"called, repair booked","called_back":true,"delay_reason":"staff_absent"}`, http.StatusOK, nil)
	testwait.For(t, "the overdue alert resolved", func() bool {
		var l struct{ Alerts []alert.Alert }
		apiDo(t, http.MethodGet, base+"/api/v1/alerts?state=open&kind=incident_overdue", "", http.StatusOK, &l)
		return len(l.Alerts) == 0
	})
}

// readMail returns a stored message's decoded subject and text part.
func readMail(t *testing.T, path string) (subject, text string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatal(err)
	}
	subject, _ = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	_, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if params["boundary"] == "" {
		b, _ := io.ReadAll(quotedprintable.NewReader(m.Body))
		return subject, string(b)
	}
	part, err := multipart.NewReader(m.Body, params["boundary"]).NextPart() // the text part comes first
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(part) // multipart decodes quoted-printable itself
	return subject, string(b)
}

// TestIncidentByMail delivers a complaint with a scan to the backend's
// e-mail intake with a real SMTP client; it comes out of the API as an
// incident of the plus-address's site, with the scan kept.
func TestIncidentByMail(t *testing.T) {
	dir := t.TempDir()
	sink, err := mailsink.Start(mailsink.Options{Addr: "127.0.0.1:0", Dir: filepath.Join(dir, "mail")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	cfg, model := incidentConfig(t, sink.Addr())
	site := model.Orgs[0].Sites[0]
	cfg.Incidents.Email = incident.EmailConfig{Addr: "127.0.0.1:0",
		Addresses: []incident.EmailAddress{{Address: "cs@shop.example", Org: site.Org, Department: "retail"}}}
	app := newApp(t, cfg, testLogger(t))
	stop := startApp(t, app)
	t.Cleanup(func() { _ = stop() })

	var scan bytes.Buffer
	if err := png.Encode(&scan, image.NewGray(image.Rect(0, 0, 900, 1200))); err != nil {
		t.Fatal(err)
	}
	msg := "From: =?utf-8?q?=D0=98=D0=B2=D0=B0=D0=BD_=D0=98=D0=B2=D0=B0=D0=BD=D0=BE=D0=B2?= <ivan@example.org>\r\n" +
		"To: cs+" + site.ID + "@shop.example\r\nSubject: Kettle leaks\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe kettle I bought leaks.\r\n" +
		"--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=\"receipt.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		wrap76(base64.StdEncoding.EncodeToString(scan.Bytes())) + "\r\n--b--\r\n"
	if err := smtp.SendMail(app.IncidentMailAddr(), nil, "ivan@example.org", []string{"cs+" + site.ID + "@shop.example"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	var l struct{ Incidents []incident.Incident }
	apiDo(t, http.MethodGet, "http://"+app.HTTPAddr()+"/api/v1/incidents", "", http.StatusOK, &l)
	if len(l.Incidents) != 1 {
		t.Fatalf("incidents %+v", l.Incidents)
	}
	in := l.Incidents[0]
	if in.Site != site.ID || in.Channel != incident.ChannelEmail || in.CustomerName != "Иван Иванов" || !strings.Contains(in.Description, "kettle I bought leaks") ||
		len(in.Attachments) != 1 || in.Attachments[0].Height != 1200 {
		t.Fatalf("incident %+v", in)
	}
	// The scan is served back as it was sent.
	req, _ := http.NewRequest(http.MethodGet, "http://"+app.HTTPAddr()+"/api/v1/incidents/"+strconv.FormatInt(in.ID, 10)+"/attachments/"+in.Attachments[0].Hash, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, scan.Bytes()) {
		t.Fatalf("scan served back differs: %d bytes, want %d", len(got), scan.Len())
	}
}

func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s)
	return b.String()
}
