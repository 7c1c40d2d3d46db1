package backend_test

import (
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/calendar"
	"github.com/semko/semko/backend/survey/surveyapi"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/mailsink"
	"github.com/semko/semko/internal/testwait"
)

// surveyBackend runs a backend with the survey on, InfluxDB db and a mail
// sink; it returns the app and the sink's directory.
func surveyBackend(t *testing.T, model *fleet.Model, db *influxlocal.Server) (*backend.App, *mailsink.Sink, string) {
	t.Helper()
	return surveyBackendOn(t, model, db, nil)
}

// surveyBackendWith is surveyBackend without InfluxDB, with edit applied
// to the config.
func surveyBackendWith(t *testing.T, model *fleet.Model, edit func(*backend.Config)) (*backend.App, *mailsink.Sink, string) {
	t.Helper()
	return surveyBackendOn(t, model, nil, edit)
}

func surveyBackendOn(t *testing.T, model *fleet.Model, db *influxlocal.Server, edit func(*backend.Config)) (*backend.App, *mailsink.Sink, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mail")
	sink, err := mailsink.Start(mailsink.Options{Addr: "127.0.0.1:0", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	host, portS, _ := net.SplitHostPort(sink.Addr())
	port, _ := strconv.Atoi(portS)
	cfg := newTestConfig(t, model, db)
	cfg.Notify.SMTP = backend.SMTPConfig{Host: host, Port: port, TLS: "none", From: "Semko <semko@localhost>"}
	cfg.Survey.Addr = "127.0.0.1:0"
	if edit != nil {
		edit(&cfg)
	}
	app := newApp(t, cfg, testLogger(t))
	startApp(t, app)
	return app, sink, dir
}

// mails reads the sink's messages, oldest first: recipient, subject and
// decoded text part.
type sunkMail struct{ To, Subject, Text string }

func readMails(t *testing.T, dir string) []sunkMail {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	sort.Strings(files)
	var out []sunkMail
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := mail.ReadMessage(strings.NewReader(string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		subject, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		out = append(out, sunkMail{To: m.Header.Get("X-Original-To"), Subject: subject, Text: textPart(t, m)})
	}
	return out
}

func textPart(t *testing.T, m *mail.Message) string {
	t.Helper()
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		b, _ := io.ReadAll(quotedprintable.NewReader(m.Body))
		return string(b)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatal("no text part")
		}
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
			b, _ := io.ReadAll(quotedprintable.NewReader(p))
			return string(b)
		}
	}
}

var linkRE = regexp.MustCompile(`http://[^\s]+/(s|u)/[A-Za-z0-9_-]+(\?lang=[a-z]+)?`)

// links returns an invitation's eleven score links and its unsubscribe
// link.
func links(t *testing.T, text string) ([]string, string) {
	t.Helper()
	var scores []string
	var unsub string
	for _, l := range linkRE.FindAllString(text, -1) {
		if strings.Contains(l, "/u/") {
			unsub = l
		} else {
			scores = append(scores, l)
		}
	}
	if len(scores) != 11 || unsub == "" {
		t.Fatalf("invitation has %d score links and unsubscribe %q:\n%s", len(scores), unsub, text)
	}
	return scores, unsub
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func postForm(t *testing.T, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func influxInt(t *testing.T, db *influxlocal.Server, q string) int64 {
	t.Helper()
	series, err := db.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if len(series) == 0 {
		return 0
	}
	n, err := series[0].Int(0, series[0].Columns[1])
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestSurveyEmailExactlyOnce: a contact earns one invitation per period;
// the customer clicks 3, clicks again, clicks 9, reloads, answers from two
// tabs at once: InfluxDB holds one vote (scale nps11, channel email, the
// counter's tags) and one reason point; a follow-up opens for the
// counter's responsible person with the reasons, the comment and (with
// consent) the address; closing it and telling the customer work; a
// tampered link gets a clear page and a count; unsubscribing is for good.
func TestSurveyEmailExactlyOnce(t *testing.T) {
	db := influxlocal.StartForTest(t)
	model := fleet.Generate(fleet.Spec{Seed: 11, Orgs: 2, SitesPerOrg: 1, CountersPerSite: 1, OperatorsPerSite: 1})
	app, _, mailDir := surveyBackend(t, model, db)
	api := "http://" + app.HTTPAddr() + "/api/v1/survey"
	ctr := model.Orgs[0].Sites[0].Counters[0]

	var ans surveyapi.ContactAnswer
	apiDo(t, http.MethodPost, api+"/contacts", `{"counter":"`+ctr.ID+`","email":"Maria.Petrova@Example.org","lang":"bg"}`, http.StatusAccepted, &ans)
	if ans.Result != "sent" || ans.Channel != "email" {
		t.Fatalf("contact = %+v", ans)
	}
	// The same customer an hour later, written differently: within six months.
	apiDo(t, http.MethodPost, api+"/contacts", `{"device":"`+ctr.Device+`","email":" maria.petrova@EXAMPLE.org ","lang":"bg"}`, http.StatusOK, &ans)
	if ans.Result != "recent" {
		t.Fatalf("second contact = %+v, want recent", ans)
	}
	mails := readMails(t, mailDir)
	if len(mails) != 1 || mails[0].To != "maria.petrova@example.org" || !strings.Contains(mails[0].Subject, "посещението") {
		t.Fatalf("mails = %+v", mails)
	}
	if !strings.Contains(mails[0].Text, "Колко вероятно е да препоръчате") {
		t.Errorf("invitation not in Bulgarian:\n%s", mails[0].Text)
	}
	scores, unsub := links(t, mails[0].Text)

	// Click 3; click it again; click 9; two tabs at once.
	code, body := get(t, scores[3])
	if code != http.StatusOK || !strings.Contains(body, "Вашата оценка: 3 от 10") || !strings.Contains(body, `name="reason"`) {
		t.Fatalf("click 3 = %d:\n%s", code, body)
	}
	get(t, scores[3])
	if _, body := get(t, scores[9]); !strings.Contains(body, "Вашата оценка: 3 от 10") {
		t.Fatalf("click 9 after 3 shows:\n%s", body)
	}
	var wg sync.WaitGroup
	for _, s := range []int{5, 6} {
		wg.Go(func() { get(t, scores[s]) })
	}
	wg.Wait()

	// The reason page, sent twice.
	action := scores[3][:strings.Index(scores[3], "/s/")] + "/a/" + scores[3][strings.Index(scores[3], "/s/")+3:]
	form := url.Values{"reason": {"speed", "information"}, "comment": {"Чаках 40 минути."}, "consent": {"yes"}}
	if code, body := postForm(t, action, form); code != http.StatusOK || !strings.Contains(body, "Благодарим") {
		t.Fatalf("reasons = %d:\n%s", code, body)
	}
	if _, body := postForm(t, action, url.Values{"reason": {"other"}}); !strings.Contains(body, "вече е записан") {
		t.Fatalf("second reasons:\n%s", body)
	}
	// Bad input: a script in the comment of someone else's answer is
	// refused before anything is stored; so is a tampered link.
	if code, _ := postForm(t, action, url.Values{"comment": {"<script>alert(1)</script>"}}); code != http.StatusBadRequest {
		t.Errorf("script comment = %d, want 400", code)
	}
	tampered := scores[3][:len(scores[3])-3] + "AAA"
	if code, body := get(t, tampered); code != http.StatusBadRequest || !strings.Contains(body, "не е валидна") {
		t.Errorf("tampered link = %d:\n%s", code, body)
	}

	// InfluxDB: one vote, one invitation, two reason points.
	waitWritten(t, app)
	q := func(s string) int64 { return influxInt(t, db, s) }
	if n := q(`SELECT count("score") FROM "vote" WHERE "channel" = 'email' AND "scale" = 'nps11'`); n != 1 {
		t.Errorf("%d email votes in InfluxDB, want 1", n)
	}
	if n := q(`SELECT sum("score") FROM "vote" WHERE "channel" = 'email' AND "counter" = '` + ctr.ID + `' AND "site" = '` + ctr.Site + `' AND "device" = '` + ctr.Device + `'`); n != 3 {
		t.Errorf("vote score %d, want 3 with the counter's tags", n)
	}
	if n := q(`SELECT count("sent") FROM "nps_invitation"`); n != 1 {
		t.Errorf("%d invitation points, want 1", n)
	}
	if n := q(`SELECT count("score") FROM "nps_reason" WHERE "driver" = 'speed'`); n != 1 {
		t.Errorf("%d speed reason points, want 1", n)
	}

	// The follow-up: open, with the reasons, comment and address.
	var list surveyapi.ListAnswer
	apiDo(t, http.MethodGet, api+"/followups?state=open", "", http.StatusOK, &list)
	if len(list.FollowUps) != 1 {
		t.Fatalf("open follow-ups = %+v", list)
	}
	f := list.FollowUps[0]
	if f.Score != 3 || f.Counter != ctr.ID || f.Comment != "Чаках 40 минути." || f.Contact != "maria.petrova@example.org" ||
		strings.Join(f.Reasons, ",") != "information,speed" || !f.Due.After(f.Opened) || f.Responsible == "" {
		t.Fatalf("follow-up = %+v", f)
	}
	id := strconv.FormatInt(f.ID, 10)
	apiDo(t, http.MethodPost, api+"/followups/"+id+"/close", `{"outcome":"Обадихме се, уговорихме замяна."}`, http.StatusOK, nil)
	apiDo(t, http.MethodPost, api+"/followups/"+id+"/close", `{"outcome":"again"}`, http.StatusConflict, nil)
	apiDo(t, http.MethodPost, api+"/followups/"+id+"/notify", `{}`, http.StatusOK, nil)
	apiDo(t, http.MethodGet, api+"/followups/999", "", http.StatusNotFound, nil)
	testwait.For(t, "the reply to the customer", func() bool { return len(readMails(t, mailDir)) == 2 })
	reply := readMails(t, mailDir)[1]
	if reply.To != "maria.petrova@example.org" || !strings.Contains(reply.Text, "уговорихме замяна") {
		t.Errorf("reply = %+v", reply)
	}
	apiDo(t, http.MethodGet, api+"/followups", "", http.StatusOK, &list)
	if list.Stats.Closed != 1 || list.Stats.ClosedInTime != 1 || list.Stats.InTimeShare != 1 {
		t.Errorf("stats = %+v", list.Stats)
	}

	// Unsubscribe: for good, in every organisation.
	if code, _ := get(t, unsub); code != http.StatusOK {
		t.Fatalf("unsubscribe page = %d", code)
	}
	if code, _ := postForm(t, unsub, url.Values{}); code != http.StatusOK {
		t.Fatalf("unsubscribe = %d", code)
	}
	other := model.Orgs[1].Sites[0].Counters[0]
	apiDo(t, http.MethodPost, api+"/contacts", `{"counter":"`+other.ID+`","email":"maria.petrova@example.org"}`, http.StatusOK, &ans)
	if ans.Result != "unsubscribed" {
		t.Fatalf("after unsubscribe = %+v", ans)
	}

	metrics := httpBody(t, "http://"+app.HTTPAddr()+"/metrics")
	for _, want := range []string{
		`semko_survey_rejected_total{reason="tampered"} 1`,
		`semko_survey_rejected_total{reason="markup"} 1`,
		`semko_survey_invitations_total{result="recent"} 1`,
		`semko_survey_invitations_total{result="unsubscribed"} 1`,
		`semko_survey_answers_total{category="detractor",channel="email"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(metrics, `semko_survey_rejected_total{reason="replayed"}`) {
		t.Error("no replayed counter")
	}
	_ = fmt.Sprint
}

// TestSurveyFollowUpEscalates: a detractor's follow-up left open past its
// deadline raises nps_followup_overdue in the alert manager, whose notice
// reaches the counter's responsible person by e-mail; closing it resolves
// the alert.
func TestSurveyFollowUpEscalates(t *testing.T) {
	model := fleet.Generate(fleet.Spec{Seed: 13, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 1, OperatorsPerSite: 1})
	site := model.Orgs[0].Sites[0]
	ctr := site.Counters[0]
	app, _, mailDir := surveyBackendWith(t, model, func(c *backend.Config) {
		// Always open, one working second: the deadline passes at once.
		c.Alerts.Calendars.Default = calendar.Spec{Hours: map[string]string{"mon-sun": "00:00-24:00"}}
		c.Alerts.Tick = 50 * time.Millisecond
		c.Alerts.Route = alert.RouteConfig{Routes: []alert.RouteConfig{{
			Match: alert.Matchers{"kind": "nps_followup_overdue"}, Receivers: []string{alert.ReceiverResponsible},
			GroupWait: 100 * time.Millisecond, GroupInterval: time.Hour,
		}}}
		c.Survey.Deadline = time.Second
		c.Survey.CheckEvery = 100 * time.Millisecond
	})
	api := "http://" + app.HTTPAddr() + "/api/v1/survey"
	apiDo(t, http.MethodPost, api+"/contacts", `{"counter":"`+ctr.ID+`","email":"late@example.org","lang":"en"}`, http.StatusAccepted, nil)
	scores, _ := links(t, readMails(t, mailDir)[0].Text)
	if code, _ := get(t, scores[2]); code != http.StatusOK {
		t.Fatalf("answer 2 = %d", code)
	}
	ctx := context.Background()
	open := func() []alert.Alert {
		l, err := app.Alerts().List(ctx, alert.Filter{Kind: "nps_followup_overdue", State: "open"})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	testwait.For(t, "the overdue alert", func() bool { return len(open()) == 1 })
	if a := open()[0]; a.Subject.Counter != ctr.ID || a.Details["score"] != "2" {
		t.Fatalf("alert %+v", a)
	}
	testwait.For(t, "the notice to the responsible person", func() bool {
		for _, m := range readMails(t, mailDir) {
			if m.To == site.Responsible.Email {
				return true
			}
		}
		return false
	})
	var list surveyapi.ListAnswer
	apiDo(t, http.MethodGet, api+"/followups", "", http.StatusOK, &list)
	if len(list.FollowUps) != 1 || !list.FollowUps[0].Overdue || list.FollowUps[0].Escalated.IsZero() {
		t.Fatalf("follow-up %+v", list.FollowUps)
	}
	apiDo(t, http.MethodPost, api+"/followups/"+strconv.FormatInt(list.FollowUps[0].ID, 10)+"/close", `{"outcome":"called back late"}`, http.StatusOK, nil)
	testwait.For(t, "the alert resolved", func() bool { return len(open()) == 0 })
	apiDo(t, http.MethodGet, api+"/followups", "", http.StatusOK, &list)
	if list.Stats.Closed != 1 || list.Stats.ClosedInTime != 0 {
		t.Errorf("stats %+v: closed late", list.Stats)
	}
}

// TestSurveyConfigFromYAML reads the README's example.
func TestSurveyConfigFromYAML(t *testing.T) {
	path := filepath.Join(t.TempDir(), "semko.yaml")
	y := "survey:\n  addr: 0.0.0.0:8090\n  base_url: https://survey.example.org\n  period: 4380h\n  orgs: {bank: {period: 2160h}}\n" +
		"  follow_passives: false\n  deadline: 3h\n  sms: {url: https://sms-gateway.example/send}\n"
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := backend.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Survey
	if s.Addr != "0.0.0.0:8090" || s.Period != 4380*time.Hour || s.Orgs["bank"].Period != 2160*time.Hour || s.Deadline != 3*time.Hour || s.SMS.URL == "" {
		t.Fatalf("survey config %+v", s)
	}
	if err := os.WriteFile(path, []byte("survey:\n  adr: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := backend.LoadConfig(path); err == nil {
		t.Fatal("misspelt survey key accepted")
	}
}
