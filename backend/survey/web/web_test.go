package web_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/semko/semko/backend/survey"
	"github.com/semko/semko/backend/survey/internal/surveytest"
	"github.com/semko/semko/backend/survey/web"
)

type fixture struct {
	env *surveytest.Env
	h   *web.Handler
	srv *httptest.Server
}

func newFixture(t *testing.T, burst int) *fixture {
	env := surveytest.New(t, nil)
	h, err := web.New(web.Options{Engine: env.Engine, Burst: burst, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{env: env, h: h, srv: srv}
}

func (f *fixture) rejected(reason string) float64 {
	return testutil.ToFloat64(web.RejectedCounter(f.h, reason))
}

func do(t *testing.T, c *http.Client, method, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var actionRE = regexp.MustCompile(`action="(/[av]/[A-Za-z0-9_-]+)"`)

func TestLinkPages(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	inv, err := f.env.Engine.Invite(ctx, survey.Contact{Counter: "c1", Email: "p@example.org", Lang: "en"})
	if err != nil {
		t.Fatal(err)
	}
	link := strings.Replace(f.env.Engine.AnswerURL(inv, 3, nil), "http://survey.test", f.srv.URL, 1)
	c := f.srv.Client()
	resp, body := do(t, c, "GET", link, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "Your answer: 3 of 10") {
		t.Fatalf("link = %d\n%s", resp.StatusCode, body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(body, "<script") || strings.Contains(body, "style=") {
		t.Fatalf("CSP %q or inline code in the page", csp)
	}
	if len(body) > 4096 {
		t.Errorf("reason page is %d bytes", len(body))
	}
	if resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Error("no Referrer-Policy")
	}
	// Every input has a label.
	for _, in := range regexp.MustCompile(`<(input|textarea)[^>]*>`).FindAllString(body, -1) {
		if strings.Contains(in, `type="hidden"`) {
			continue
		}
		if !strings.Contains(body, "<label") {
			t.Fatalf("unlabelled %s", in)
		}
	}
	action := actionRE.FindStringSubmatch(body)[1]
	// An oversized comment, an unknown reason: clear pages, counted.
	resp, body = do(t, c, "POST", f.srv.URL+action, url.Values{"comment": {strings.Repeat("x", 1001)}})
	if resp.StatusCode != 400 || !strings.Contains(body, "too long") || f.rejected(web.RejectComment) != 1 {
		t.Fatalf("long comment = %d, %v\n%s", resp.StatusCode, f.rejected(web.RejectComment), body)
	}
	resp, _ = do(t, c, "POST", f.srv.URL+action, url.Values{"reason": {"bribes"}})
	if resp.StatusCode != 400 || f.rejected(web.RejectReasons) != 1 {
		t.Fatalf("unknown reason = %d", resp.StatusCode)
	}
	resp, body = do(t, c, "POST", f.srv.URL+action, url.Values{"reason": {"speed"}, "comment": {"ok"}})
	if resp.StatusCode != 200 || !strings.Contains(body, "Thank you") {
		t.Fatalf("reasons = %d\n%s", resp.StatusCode, body)
	}
	// The link again: already recorded.
	if _, body := do(t, c, "GET", link, nil); !strings.Contains(body, "already recorded") {
		t.Fatalf("reload:\n%s", body)
	}
	// Another score's link: the first answer stands, counted as replayed.
	other := strings.Replace(f.env.Engine.AnswerURL(inv, 10, nil), "http://survey.test", f.srv.URL, 1)
	do(t, c, "GET", other, nil)
	if f.rejected(web.RejectReplayed) != 1 {
		t.Errorf("replayed = %v", f.rejected(web.RejectReplayed))
	}
	// Tampered and expired.
	resp, body = do(t, c, "GET", link[:len(link)-4]+"AAAA?lang=en", nil)
	if resp.StatusCode != 400 || !strings.Contains(body, "not valid") || f.rejected(web.RejectTampered) != 1 {
		t.Fatalf("tampered = %d\n%s", resp.StatusCode, body)
	}
	f.env.Advance(15 * 24 * time.Hour)
	resp, body = do(t, c, "GET", link, nil)
	if resp.StatusCode != 410 || !strings.Contains(body, "expired") || f.rejected(web.RejectExpired) != 1 {
		t.Fatalf("expired = %d\n%s", resp.StatusCode, body)
	}
	// Language switch.
	_, body = do(t, c, "GET", link+"?lang=ru", nil)
	if !strings.Contains(body, "Срок действия ссылки истёк") {
		t.Fatalf("ru page:\n%s", body)
	}
}

func TestQRPages(t *testing.T) {
	f := newFixture(t, 0)
	code := strings.Replace(f.env.Engine.CounterURL("c1"), "http://survey.test", f.srv.URL, 1)
	jar, _ := cookiejar.New(nil)
	phone := &http.Client{Jar: jar}
	resp, body := do(t, phone, "GET", code+"?lang=bg", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "Колко вероятно е да препоръчате Община Тест") || strings.Count(body, `name="score"`) != 11 {
		t.Fatalf("scan = %d\n%s", resp.StatusCode, body)
	}
	vote := actionRE.FindStringSubmatch(body)[1]
	resp, body = do(t, phone, "POST", f.srv.URL+vote, url.Values{"score": {"4"}, "lang": {"bg"}})
	if resp.StatusCode != 200 || !strings.Contains(body, "Вашата оценка: 4 от 10") {
		t.Fatalf("vote = %d\n%s", resp.StatusCode, body)
	}
	// The same form again (back button, second tab): the first answer.
	_, body = do(t, phone, "POST", f.srv.URL+vote, url.Values{"score": {"10"}})
	if !strings.Contains(body, "4 от 10") || f.rejected(web.RejectReplayed) != 1 {
		t.Fatalf("replay:\n%s", body)
	}
	// Scanning again with the same phone: refused.
	_, body = do(t, phone, "GET", code, nil)
	vote2 := actionRE.FindStringSubmatch(body)[1]
	resp, _ = do(t, phone, "POST", f.srv.URL+vote2, url.Values{"score": {"10"}})
	if resp.StatusCode != http.StatusConflict || f.rejected(web.RejectReplayed) != 2 {
		t.Fatalf("same phone, new scan = %d", resp.StatusCode)
	}
	// Out of range.
	resp, _ = do(t, phone, "POST", f.srv.URL+vote2, url.Values{"score": {"11"}})
	if resp.StatusCode != 400 || f.rejected(web.RejectScore) != 1 {
		t.Fatalf("score 11 = %d", resp.StatusCode)
	}
	// Another phone counts.
	jar2, _ := cookiejar.New(nil)
	other := &http.Client{Jar: jar2}
	_, body = do(t, other, "GET", code, nil)
	resp, _ = do(t, other, "POST", f.srv.URL+actionRE.FindStringSubmatch(body)[1], url.Values{"score": {"9"}})
	if resp.StatusCode != 200 {
		t.Fatalf("other phone = %d", resp.StatusCode)
	}
	// A cross-site form post is refused.
	req, _ := http.NewRequest("POST", f.srv.URL+vote2, strings.NewReader("score=1"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	r, err := phone.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site post = %d", r.StatusCode)
	}
}

func TestFlood(t *testing.T) {
	f := newFixture(t, 5)
	c := f.srv.Client()
	var limited int
	for range 20 {
		resp, body := do(t, c, "GET", f.srv.URL+"/healthz", nil)
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
			if !strings.Contains(body, "<h1>") {
				t.Fatal("flood page is not a page")
			}
		}
	}
	if limited < 14 || f.rejected(web.RejectFlood) != float64(limited) {
		t.Fatalf("%d of 20 limited, counter %v", limited, f.rejected(web.RejectFlood))
	}
}
