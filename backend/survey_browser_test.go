package backend_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/account"
	"github.com/semko/semko/backend/survey"
	"github.com/semko/semko/backend/survey/surveyapi"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/testwait"
)

// TestSurveyInBrowser is the "done when": in a phone-sized
// headless Chromium, a customer opens the invitation from the mail sink,
// answers 3 and a reason; the responsible person of the counter's site
// signs in to the console and finds the detractor's follow-up with its
// deadline in the site's time. SEMKO_SHOT_DIR keeps the screenshots.
func TestSurveyInBrowser(t *testing.T) {
	chromium := "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("headless Chromium not found at %s", chromium)
	}
	model := fleet.Generate(fleet.Spec{Seed: 12, Orgs: 2, SitesPerOrg: 1, CountersPerSite: 1, OperatorsPerSite: 1})
	app, _, mailDir := surveyBackendWith(t, model, func(c *backend.Config) { c.Console.BcryptCost = bcrypt.MinCost })
	site := model.Orgs[0].Sites[0]
	ctr := site.Counters[0]
	ctx := context.Background()
	if err := app.Accounts().Create(ctx, account.Account{Name: "maria", Role: access.CustomerService,
		Scope: access.Scope{Sites: []string{site.ID}}, Lang: "bg"}, "maria-password-1"); err != nil {
		t.Fatal(err)
	}

	var ans surveyapi.ContactAnswer
	apiDo(t, http.MethodPost, "http://"+app.HTTPAddr()+"/api/v1/survey/contacts",
		`{"counter":"`+ctr.ID+`","email":"customer@example.org","lang":"bg"}`, http.StatusAccepted, &ans)
	testwait.For(t, "the invitation in the mail sink", func() bool { return len(readMails(t, mailDir)) == 1 })
	scores, _ := links(t, readMails(t, mailDir)[0].Text)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.WindowSize(390, 844))
	actx, cancel := chromedp.NewExecAllocator(ctx, opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The first call starts the browser and must not carry the timeout.
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	tctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(tctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	shot := func(name string) {
		t.Helper()
		dir := os.Getenv("SEMKO_SHOT_DIR")
		if dir == "" {
			return
		}
		png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The customer: one click on 3, then a reason and a comment.
	do("open the score link", chromedp.Navigate(scores[3]), chromedp.WaitVisible(chromedp.CSS(`input[value="speed"]`)))
	shot("survey-reasons-phone")
	do("answer the reasons",
		chromedp.Click(chromedp.CSS(`input[value="speed"]`)),
		chromedp.SendKeys(chromedp.ID("comment"), "Чаках 40 минути на гишето."),
		chromedp.Click(chromedp.CSS(`button.send`)),
		chromedp.WaitVisible(chromedp.CSS(`p.msg`)),
	)
	shot("survey-thanks-phone")
	if thanks := text("main"); !strings.Contains(thanks, "Отговорът ви е записан") {
		t.Fatalf("after the reasons the page says %q", thanks)
	}

	// The follow-up, as the engine has it: its deadline in the site's zone.
	fs, err := app.Survey().FollowUps(ctx, survey.FollowUpFilter{})
	if err != nil || len(fs) != 1 || fs[0].Score != 3 || strings.Join(fs[0].Reasons, ",") != "speed" {
		t.Fatalf("follow-ups %+v, %v", fs, err)
	}
	loc, err := time.LoadLocation(model.Orgs[0].Timezone)
	if err != nil {
		loc = time.UTC
	}
	due := fs[0].Due.In(loc).Format("2006-01-02 15:04 MST")

	// The responsible person signs in on the phone and opens Follow-ups.
	base := "http://" + app.HTTPAddr()
	do("sign in",
		chromedp.Navigate(base+"/signin"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="name"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "maria"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "maria-password-1"),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.CSS(`header .nav`)),
	)
	do("open follow-ups", chromedp.Navigate(base+"/followups"), chromedp.WaitVisible(chromedp.ID("followups")))
	shot("console-followups-phone")
	if list := text("main"); !strings.Contains(list, "3 / 10") || !strings.Contains(list, due) || !strings.Contains(list, "бързина") {
		t.Fatalf("follow-ups page lacks the score 3, the deadline %q or the reason:\n%s", due, list)
	}
	do("open the follow-up", chromedp.Click(chromedp.CSS(`#followups a`)), chromedp.WaitVisible(chromedp.ID("due")))
	shot("console-followup-phone")
	if detail := text("main"); !strings.Contains(detail, "Чаках 40 минути на гишето.") || !strings.Contains(detail, due) {
		t.Fatalf("follow-up page:\n%s", detail)
	}

	// One click opens an incident pre-filled from the detractor's answer.
	do("open an incident from the follow-up", chromedp.Click(chromedp.ID("open-incident")), chromedp.WaitVisible(chromedp.ID("source")))
	if ch, _ := chromedp.Run(tctx, chromedp.Value(chromedp.ID("channel"))); ch != "nps_detractor" {
		t.Fatalf("incident from the follow-up: channel %q", ch)
	}
	if d, _ := chromedp.Run(tctx, chromedp.Value(chromedp.ID("description"))); !strings.Contains(d, "NPS 3/10") || !strings.Contains(d, "Чаках 40 минути") {
		t.Fatalf("incident from the follow-up: description %q", d)
	}
	if s, _ := chromedp.Run(tctx, chromedp.Value(chromedp.ID("site"))); s != site.ID {
		t.Fatalf("incident from the follow-up: site %q, want %s", s, site.ID)
	}

	// The same list on a desktop.
	do("desktop", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"/followups"), chromedp.WaitVisible(chromedp.ID("followups")))
	shot("console-followups-desktop")
	do("back to the phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(base+"/followups/"+strconv.FormatInt(fs[0].ID, 10)),
		chromedp.WaitVisible(chromedp.ID("due")))

	// Recording what was done closes it.
	do("record the outcome",
		chromedp.SendKeys(chromedp.ID("outcome"), "Обадихме се, уговорихме час без чакане."),
		chromedp.Submit(chromedp.ID("outcome")),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)),
	)
	if f, _ := app.Survey().FollowUp(ctx, fs[0].ID); f.State != survey.FollowUpClosed || f.ClosedBy != "maria" {
		t.Fatalf("after recording: %+v", f)
	}

	// Out of scope: another organisation's person finds nothing, and the
	// follow-up's address answers 404.
	other := model.Orgs[1].Sites[0]
	if err := app.Accounts().Create(ctx, account.Account{Name: "ivan", Role: access.CustomerService,
		Scope: access.Scope{Sites: []string{other.ID}}, Lang: "en"}, "ivan-password-1"); err != nil {
		t.Fatal(err)
	}
	tok, _, err := app.Accounts().NewToken(ctx, "ivan", "test")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{
		"/followups": http.StatusOK,
		"/followups/" + strconv.FormatInt(fs[0].ID, 10):               http.StatusNotFound,
		"/api/v1/survey/followups/" + strconv.FormatInt(fs[0].ID, 10): http.StatusNotFound,
	} {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (want == http.StatusOK && strings.Contains(string(body), "3 / 10")) {
			t.Errorf("ivan GET %s = %d, want %d (and no follow-up of another organisation)", path, resp.StatusCode, want)
		}
	}
}
