package delivery_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/alert/notify/email"
	"github.com/semko/semko/backend/report"
	"github.com/semko/semko/backend/report/delivery"
	"github.com/semko/semko/backend/report/delivery/sqlite"
	"github.com/semko/semko/internal/influxdb"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/mailsink"
)

var sofia, _ = time.LoadLocation("Europe/Sofia")

func TestSendsOncePerPeriodAndRetries(t *testing.T) {
	ctx := context.Background()
	srv := influxlocal.StartForTest(t)
	db, err := influxdb.New(influxdb.Options{URL: srv.URL(), Bucket: srv.Database()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	// 21 votes in the week of 23 November (Sofia), 6 of them satisfied,
	// and 9 in November's other weeks.
	var lines []string
	week := time.Date(2026, 11, 23, 9, 0, 0, 0, sofia)
	for i := range 30 {
		at := week.Add(time.Duration(i) * 5 * time.Hour)
		if i >= 21 {
			at = time.Date(2026, 11, 2+i-21, 10, 0, 0, 0, sofia)
		}
		score := 2
		if i%4 == 0 {
			score = 5
		}
		lines = append(lines, fmt.Sprintf(`vote,channel=keypad,counter=c1,device=kp-1,operator=op-1,org=bank,scale=csat5,service=cash,site=b-north score=%di,satisfied=%di,negative=%di,valid="true" %d`,
			score, map[bool]int{true: 1}[score >= 4], map[bool]int{true: 1}[score <= 2], at.UnixNano()))
	}
	resp, err := http.Post(srv.URL()+"/write?db="+srv.Database(), "text/plain", strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	dir := t.TempDir()
	mailDir := filepath.Join(dir, "mail")
	sink, err := mailsink.Start(mailsink.Options{Addr: "127.0.0.1:0", Dir: mailDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	host, portS, _ := net.SplitHostPort(sink.Addr())
	port, _ := strconv.Atoi(portS)
	sender, err := email.NewSender(email.Config{Host: host, Port: port, TLS: email.TLSNone, From: "Semko <semko@example.org>",
		Timeout: 10 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(ctx, filepath.Join(dir, "reports.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	weekly := delivery.Subscription{Account: "maria", Scope: access.Scope{Orgs: []string{"bank"}}, Org: "bank",
		Period: report.Week, Format: "pdf", Lang: "bg", Recipients: []string{"Мария <maria@example.org>"}}
	monthly := delivery.Subscription{Account: "ivan", Scope: access.Scope{Sites: []string{"b-north"}}, Org: "bank", Site: "b-north",
		Period: report.Month, Format: "csv", Lang: "en", Recipients: []string{"ivan@example.org"}}
	for _, s := range []*delivery.Subscription{&weekly, &monthly} {
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := store.Subscribe(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	// Sunday 29 November, 23:00 in Sofia: new subscriptions get the last
	// closed period's report at once (16-22 November, October).
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 29, 23, 0, 0, 0, sofia))
	builder := &report.Builder{DB: db, Now: clock.Now}
	job, err := delivery.New(delivery.Options{Store: store, Builder: builder, Sender: sender, Clock: clock,
		Zone: func(string, string) *time.Location { return sofia }})
	if err != nil {
		t.Fatal(err)
	}
	run := func(want int) {
		t.Helper()
		n, _ := job.RunOnce(ctx)
		if n != want {
			t.Fatalf("at %s: sent %d, want %d", clock.Now().In(sofia), n, want)
		}
	}
	run(2)
	run(0)
	clock.Advance(7*time.Hour + 59*time.Minute) // Monday 06:59
	run(0)
	clock.Advance(time.Minute) // Monday 07:00: last week's report
	run(1)
	run(0) // never twice
	clock.Advance(time.Hour)
	run(0)
	if sink.Stored() != 3 {
		t.Fatalf("%d messages in the sink, want 3", sink.Stored())
	}
	msg, att := readMail(t, mailDir, "Седмица 48")
	if subj := decodeHeader(msg.Header.Get("Subject")); !strings.Contains(subj, "Отчет за удовлетвореността: bank, Седмица 48") {
		t.Errorf("subject %q", subj)
	}
	pdf := filepath.Join(dir, "a.pdf")
	if err := os.WriteFile(pdf, att, 0o600); err != nil {
		t.Fatal(err)
	}
	text, err := exec.Command("pdftotext", pdf, "-").Output()
	if err != nil {
		t.Fatal(err)
	}
	if s := string(text); !strings.Contains(s, "23 ноември 2026 г.") || !strings.Contains(s, "28,6") { // 6 of 21 satisfied
		t.Errorf("the attached report is not last week's:\n%s", s)
	}

	// 1 December 07:00: the month is due, but the mail server is down.
	addr := sink.Addr()
	sink.Close()
	clock.Advance(time.Date(2026, 12, 1, 7, 0, 0, 0, sofia).Sub(clock.Now()))
	run(0)
	d, ok, err := store.Delivery(ctx, monthly.ID, time.Date(2026, 11, 1, 0, 0, 0, 0, sofia))
	if err != nil || !ok || d.Status != delivery.StatusFailed || d.Attempts != 1 {
		t.Fatalf("after a failed send: %+v %v %v", d, ok, err)
	}
	run(0) // the pause after a failure
	sink, err = mailsink.Start(mailsink.Options{Addr: addr, Dir: mailDir})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	run(1)
	run(0)
	d, _, _ = store.Delivery(ctx, monthly.ID, time.Date(2026, 11, 1, 0, 0, 0, 0, sofia))
	if d.Status != delivery.StatusSent || d.Attempts != 2 {
		t.Errorf("after the retry: %+v", d)
	}
	_, att = readMail(t, mailDir, "November 2026")
	if !bytes.Contains(att, []byte("Votes,30")) || bytes.Contains(att, []byte("p-one")) {
		t.Errorf("the monthly CSV lacks November's 30 votes:\n%s", att)
	}
}

// readMail finds the one message of the sink whose subject contains
// subject and returns it with its attachment.
func readMail(t *testing.T, dir, subject string) (*mail.Message, []byte) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	var msg *mail.Message
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(decodeHeader(m.Header.Get("Subject")), subject) {
			if msg != nil {
				t.Fatalf("two messages about %q", subject)
			}
			msg = m
		}
	}
	if msg == nil {
		t.Fatalf("no message about %q among %d", subject, len(files))
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	if _, err := mr.NextPart(); err != nil { // the text
		t.Fatal(err)
	}
	p, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	att, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, p))
	if err != nil {
		t.Fatal(err)
	}
	return msg, att
}

func decodeHeader(s string) string {
	d, err := new(mime.WordDecoder).DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}

func TestDue(t *testing.T) {
	for _, c := range []struct {
		kind      report.Kind
		now       time.Time
		start     string
		due       string
		dueBefore bool
	}{
		{report.Week, time.Date(2026, 12, 7, 6, 59, 0, 0, sofia), "2026-11-30", "2026-12-07T07:00:00+02:00", true},
		{report.Week, time.Date(2026, 12, 9, 12, 0, 0, 0, sofia), "2026-11-30", "2026-12-07T07:00:00+02:00", false},
		{report.Month, time.Date(2027, 1, 1, 7, 0, 0, 0, sofia), "2026-12-01", "2027-01-01T07:00:00+02:00", false},
		{report.Quarter, time.Date(2026, 4, 1, 8, 0, 0, 0, sofia), "2026-01-01", "2026-04-01T07:00:00+03:00", false},
	} {
		p, due, err := delivery.Due(c.kind, c.now, sofia, 7)
		if err != nil {
			t.Fatal(err)
		}
		if p.Start.Format(time.DateOnly) != c.start || due.Format(time.RFC3339) != c.due || c.now.Before(due) != c.dueBefore {
			t.Errorf("%s at %s: period %s due %s", c.kind, c.now, p.Start, due)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := delivery.Subscription{Account: "a", Scope: access.Scope{Orgs: []string{"bank"}}, Org: "bank", Period: report.Week,
		Format: "pdf", Lang: "en", Recipients: []string{"a@example.org"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*delivery.Subscription){
		"custom period":  func(s *delivery.Subscription) { s.Period = report.Custom },
		"no recipients":  func(s *delivery.Subscription) { s.Recipients = nil },
		"bad address":    func(s *delivery.Subscription) { s.Recipients = []string{"not an address"} },
		"unknown format": func(s *delivery.Subscription) { s.Format = "doc" },
		"unknown lang":   func(s *delivery.Subscription) { s.Lang = "de" },
		"out of scope":   func(s *delivery.Subscription) { s.Org = "post" },
	} {
		s := ok
		mut(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
