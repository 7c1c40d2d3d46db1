package backend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jonboulle/clockwork"
	"golang.org/x/crypto/bcrypt"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/account"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/calendar"
	"github.com/semko/semko/backend/incident"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxdb"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/mailsink"
	"github.com/semko/semko/internal/testwait"
)

// deskLog is what the journey did, kept by the test as it goes, from
// which the Customer Service figures are recomputed independently of the
// desk and InfluxDB.
type deskLog struct {
	registered map[string]int // by channel
	types      map[string]int // by type
	refused    map[string]int // interaction errors by code
	passMin    []float64      // minutes from registration to pass-on
	overdue    int            // deadlines missed
	closeMin   []float64
	late       map[string]int // late closes by reason
}

// TestIncidentDeskInBrowser is the desk's journey in headless Chromium
// against a real backend (broker, InfluxDB, SMTP mail sink), the desk on a
// fake clock so its deadline passes at once:
//
//   - shop staff (a shop manager) on a phone registers a quality incident
//     with a scan: first without the remark's number (the error shows next
//     to the field, nothing is kept), then whole; script typed into the
//     description stays text; a file over the limit is refused, nothing
//     kept;
//   - Customer Service sees it in the list, passes it on to the shop's
//     responsible person, and opens a second incident in one click from a
//     negative-vote alert, pre-filled;
//   - the deadline passes on the desk's clock: the escalation e-mail with
//     the incident's link arrives in the mail sink; the responsible person
//     follows the link (signing in on the way), closes it with the outcome,
//     the reason and the "+1 call";
//   - another organisation's incident by URL is 404;
//   - the Customer Service dashboard's own queries, run against InfluxDB,
//     equal the figures recomputed from what the test did.
//
// Screenshots of the list, the form with an error and the incident page at
// 390x844 and 1280x900 go to $SEMKO_ARTIFACTS (SEMKO_UPDATE_DOCS=1 also
// writes docs/desk-phone.png and docs/desk-desktop.png).
func TestIncidentDeskInBrowser(t *testing.T) {
	chromium(t)
	if testing.Short() {
		t.Skip("end-to-end: starts InfluxDB and Chromium")
	}
	ctx := context.Background()
	mailDir := filepath.Join(t.TempDir(), "mail")
	sink, err := mailsink.Start(mailsink.Options{Addr: "127.0.0.1:0", Dir: mailDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	db := influxlocal.StartForTest(t)
	model := fleet.Generate(fleet.Spec{Seed: 31, Orgs: 2, SitesPerOrg: 1, CountersPerSite: 1, OperatorsPerSite: 1})
	site, other := model.Orgs[0].Sites[0], model.Orgs[1].Sites[0]
	t0 := time.Now().Truncate(time.Minute)
	clock := clockwork.NewFakeClockAt(t0)
	cfg := newTestConfig(t, model, db)
	cfg.Console.BcryptCost = bcrypt.MinCost
	host, portS, _ := net.SplitHostPort(sink.Addr())
	port, _ := strconv.Atoi(portS)
	cfg.Notify.SMTP = backend.SMTPConfig{Host: host, Port: port, TLS: "none", From: "Semko <semko@localhost>"}
	cfg.Alerts.Tick = 50 * time.Millisecond
	cfg.Alerts.Calendars.Default = calendar.Spec{Hours: map[string]string{"mon-sun": "00:00-24:00"}}
	cfg.Alerts.Receivers = []alert.Receiver{{Name: "shop-lead", Email: []string{"maria@shop.example"}, Lang: "en"}}
	cfg.Alerts.Route = alert.RouteConfig{Routes: []alert.RouteConfig{{
		Match: alert.Matchers{"kind": string(alert.KindIncidentOverdue)}, Receivers: []string{"shop-lead"},
		GroupWait: 50 * time.Millisecond, GroupInterval: time.Hour,
	}}}
	const maxTime = 3 * time.Hour
	cfg.Incidents = incident.Config{
		Departments: []incident.Department{{Name: "retail", Title: "Retail shop", Role: "shop manager", Accounts: []string{"maria"}, MaxTime: maxTime}},
		BaseURL:     "https://semko.example.org", Clock: clock,
	}
	app := runBackend(t, cfg)
	base := "http://" + app.HTTPAddr()
	for name, a := range map[string]account.Account{
		"petar": {Role: access.Manager, Scope: access.Scope{Sites: []string{site.ID}}},         // shop staff
		"elena": {Role: access.CustomerService, Scope: access.Scope{Orgs: []string{site.Org}}}, // Customer Service
		"maria": {Role: access.Technician, Scope: access.Scope{Sites: []string{site.ID}}},      // the shop's responsible person
	} {
		a.Name, a.Lang = name, "en"
		if err := app.Accounts().Create(ctx, a, "password-of-"+name); err != nil {
			t.Fatal(err)
		}
	}
	log := deskLog{registered: map[string]int{}, types: map[string]int{}, refused: map[string]int{}, late: map[string]int{}}

	// A legible scan: 1240x1754 (A4 at 150 dpi), above the 600-pixel minimum.
	dir := t.TempDir()
	var scanPNG bytes.Buffer
	if err := png.Encode(&scanPNG, claimScan(1240, 1754)); err != nil {
		t.Fatal(err)
	}
	scanPath, hugePath := filepath.Join(dir, "claim-scan.png"), filepath.Join(dir, "huge.png")
	if err := os.WriteFile(scanPath, scanPNG.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hugePath, append(scanPNG.Bytes(), make([]byte, incident.DefaultMaxAttachment)...), 0o600); err != nil {
		t.Fatal(err)
	}

	bctx := newBrowser(t, 390, 844)
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	phone := func() { do("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)) }
	desktop := func() { do("desktop", chromedp.EmulateViewport(1280, 900)) }
	signOut := func() {
		do("sign out", chromedp.Navigate(base+"/"), chromedp.Click(chromedp.CSS(`form.signout button`)), chromedp.WaitVisible(chromedp.CSS(`input[name="name"]`)))
	}
	count := func() int {
		l, err := app.Incidents().List(ctx, access.Principal{Scope: access.Everything}, incident.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		return len(l)
	}
	filesKept := func() int {
		l, _ := os.ReadDir(filepath.Join(cfg.DataDir, "incident-files"))
		return len(l)
	}

	// Shop staff on a phone: the form, first without the remark's number.
	phone()
	signIn(t, bctx, base, "petar", "password-of-petar")
	fill := func(desc string) {
		do("fill the form",
			chromedp.Navigate(base+"/incidents/new"), chromedp.WaitVisible(chromedp.ID("description")),
			chromedp.SetValue(chromedp.ID("channel"), "in_person"), chromedp.SetValue(chromedp.ID("type"), "product_quality"),
			chromedp.SendKeys(chromedp.ID("customer_name"), "Мария Петрова"),
			chromedp.SendKeys(chromedp.ID("customer_contact"), "+359 888 123 456"),
			chromedp.SendKeys(chromedp.ID("description"), desc))
	}
	const desc = `The kettle leaks after a week; she wants it exchanged. <script>alert("x")</script>`
	fill(desc)
	do("submit without the remark", chromedp.Click(chromedp.ID("save")), chromedp.WaitVisible(chromedp.ID("err-remark_no")))
	log.refused[incident.ErrCodeRemark]++
	if got := text("#err-remark_no"); !strings.Contains(got, "remark") {
		t.Fatalf("the remark's error says %q", got)
	}
	do("show the error", chromedp.Evaluate[chromedp.Void](`document.getElementById("err-remark_no").scrollIntoView({block: "center"})`))
	screenshot(t, bctx, "desk-form-error-phone.png", "")
	if n := count(); n != 0 {
		t.Fatalf("%d incidents after a refused form", n)
	}
	// What was typed is still there; the number and the scan complete it.
	do("complete the form", chromedp.SendKeys(chromedp.ID("remark_no"), "R-2024-117"),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{scanPath}),
		chromedp.Click(chromedp.ID("save")), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	log.registered["in_person"]++
	log.types["product_quality"]++
	loc, _ := chromedp.Run(bctx, chromedp.Location())
	m := regexp.MustCompile(`/incidents/(\d+)\?done=`).FindStringSubmatch(loc)
	if m == nil {
		t.Fatalf("after registering the browser is at %s", loc)
	}
	id := m[1]
	if got := text("#description-text"); got != desc {
		t.Fatalf("description shown as %q, want the text as typed", got)
	}
	if n, _ := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("main script, main img:not(.previews img)").length`)); n != 0 {
		t.Fatalf("%d script or stray image elements came from the typed text", n)
	}
	if w, _ := chromedp.Run(bctx, chromedp.Poll[int](`document.querySelector(".previews img").naturalWidth`)); w != 1240 {
		t.Fatalf("the scan's preview is %d pixels wide, want 1240", w)
	}
	// A file over the limit: a clear refusal, nothing kept.
	fill("Second complaint")
	do("a huge file", chromedp.SendKeys(chromedp.ID("remark_no"), "R-2024-118"), chromedp.SetUploadFiles(chromedp.ID("file"), []string{hugePath}),
		chromedp.Click(chromedp.ID("save")), chromedp.WaitVisible(chromedp.ID("err-attachments")))
	if got := text("#err-attachments"); !strings.Contains(got, "larger than 10 MiB") {
		t.Fatalf("huge file refused with %q", got)
	}
	if n, f := count(), filesKept(); n != 1 || f != 1 {
		t.Fatalf("after the huge file: %d incidents, %d files; want 1 and 1", n, f)
	}
	signOut()

	// Customer Service at a desk: the list shows it.
	desktop()
	signIn(t, bctx, base, "elena", "password-of-elena")
	do("the list", chromedp.Navigate(base+"/incidents"), chromedp.WaitVisible(chromedp.CSS(`#incident-list tr[data-id="`+id+`"]`)))
	screenshot(t, bctx, "desk-list-desktop.png", "desk-desktop.png")
	do("a form with an error", chromedp.Navigate(base+"/incidents/new"), chromedp.WaitVisible(chromedp.ID("description")),
		chromedp.SendKeys(chromedp.ID("customer_name"), "??"), chromedp.SendKeys(chromedp.ID("remark_no"), "R-9"),
		chromedp.SendKeys(chromedp.ID("description"), "Rude answer at the checkout"),
		chromedp.Click(chromedp.ID("save")), chromedp.WaitVisible(chromedp.ID("err-customer_name")))
	log.refused[incident.ErrCodeName]++
	screenshot(t, bctx, "desk-form-error-desktop.png", "")

	// Twenty minutes later she passes it on to the shop.
	clock.Advance(20 * time.Minute)
	do("pass it on", chromedp.Navigate(base+"/incidents/"+id), chromedp.WaitVisible(chromedp.ID("pass-form")),
		chromedp.SetValue(chromedp.ID("to"), "maria"), chromedp.SendKeys(chromedp.ID("pass-comment"), "Please exchange it and call her"),
		chromedp.Click(chromedp.ID("pass")), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	log.passMin = append(log.passMin, 20)
	passedAt := clock.Now()
	if got := text("#passed-to"); got != "maria" {
		t.Fatalf("passed to %q", got)
	}
	screenshot(t, bctx, "desk-incident-desktop.png", "")

	// A negative vote at the shop's keypad: one click opens the form
	// pre-filled; registering keeps the alert's reference.
	if err := app.Alerts().Raise(ctx, alert.Finding{Kind: alert.KindNegativeVote, Severity: alert.SeverityWarning,
		Subject: alert.Subject{Org: site.Org, Site: site.ID, Counter: site.Counters[0].ID}, Message: "A customer pressed the red button",
		Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	votes, err := app.Alerts().List(ctx, alert.Filter{Kind: alert.KindNegativeVote, State: "open"})
	if err != nil || len(votes) != 1 {
		t.Fatalf("negative vote alerts %+v %v", votes, err)
	}
	vote := strconv.FormatInt(votes[0].ID, 10)
	do("open from the alert", chromedp.Navigate(base+"/alerts/"+vote), chromedp.Click(chromedp.ID("open-incident")),
		chromedp.WaitVisible(chromedp.ID("source")))
	if ch, _ := chromedp.Run(bctx, chromedp.Value(chromedp.ID("channel"))); ch != "keypad_negative" {
		t.Fatalf("pre-filled channel %q", ch)
	}
	if d, _ := chromedp.Run(bctx, chromedp.Value(chromedp.ID("description"))); !strings.Contains(d, "red button") || !strings.Contains(d, "alert #"+vote) {
		t.Fatalf("pre-filled description %q", d)
	}
	do("register the vote's incident", chromedp.Click(chromedp.ID("save")), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	log.registered["keypad_negative"]++
	log.types["poor_service"]++
	if got := text("main"); !strings.Contains(got, "from alert "+vote) {
		t.Fatalf("the vote's incident does not link its alert:\n%s", got)
	}
	// The list on a phone.
	phone()
	do("the list on a phone", chromedp.Navigate(base+"/incidents"), chromedp.WaitVisible(chromedp.CSS(`#incident-list tr[data-id="`+id+`"]`)))
	screenshot(t, bctx, "desk-list-phone.png", "")

	// Another organisation's incident by its address: 404.
	foreign, err := app.Incidents().Register(ctx, access.Principal{Account: "bank-cs", Role: access.CustomerService, Scope: access.Everything},
		incident.Draft{Org: other.Org, Site: other.ID, Department: "retail", Channel: incident.ChannelEmail, Type: incident.TypeService, Description: "not yours"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := chromedp.Run(bctx, chromedp.NavigateResponse(base+"/incidents/"+strconv.FormatInt(foreign.ID, 10)))
	body, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil || resp.Status != 404 || strings.Contains(body, "not yours") {
		t.Fatalf("another organisation's incident: %v %v: %q", resp, err, body)
	}
	signOut()

	// The deadline to report back passes on the desk's clock; the check
	// marks both incidents overdue and the notice reaches the mail sink.
	clock.Advance(maxTime + 5*time.Minute)
	log.overdue += 2 // the passed-on incident and the vote's, registered at the same minute
	var link string
	testwait.For(t, "the overdue notice with the incident's link", func() bool {
		files, _ := filepath.Glob(filepath.Join(mailDir, "*.eml"))
		for _, f := range files {
			_, body := readMail(t, f)
			if l := regexp.MustCompile(`https://semko\.example\.org/incidents/` + id + `\b`).FindString(body); l != "" {
				link = l
				return true
			}
		}
		return false
	})

	// The responsible person follows the link on her phone: sign-in first,
	// then the incident, overdue.
	page := base + strings.TrimPrefix(link, "https://semko.example.org")
	do("follow the link", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(`input[name="name"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "maria"), chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "password-of-maria"),
		chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("close-form")))
	if got := text("#due"); !strings.Contains(strings.ToLower(got), "overdue") {
		t.Fatalf("the deadline shows %q, want it marked overdue", got)
	}
	screenshot(t, bctx, "desk-incident-phone.png", "desk-phone.png")
	do("close it", chromedp.SendKeys(chromedp.ID("outcome"), "The customer came, the kettle was exchanged"),
		chromedp.Click(chromedp.ID("called_back")), chromedp.SetValue(chromedp.ID("delay_reason"), "staff_absent"),
		chromedp.Click(chromedp.ID("close")), chromedp.WaitVisible(chromedp.ID("reopen-form")))
	log.closeMin = append(log.closeMin, clock.Now().Sub(t0).Minutes())
	log.late["staff_absent"]++
	if got := text("#called-back"); got != "made" {
		t.Fatalf("+1 call shows %q", got)
	}
	if !clock.Now().After(passedAt.Add(maxTime)) {
		t.Fatal("closed before the deadline: the journey did not test a late close")
	}

	checkDeskFigures(t, db, site.Org, t0, log)
}

// claimScan draws a white page with lines of "text": a legible scan.
func claimScan(w, h int) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	for y := h / 10; y < h*9/10; y += h / 40 {
		end := w*9/10 - (y*7)%(w/3)
		for dy := 0; dy < h/120; dy++ {
			for x := w / 10; x < end; x++ {
				img.Pix[(y+dy)*img.Stride+x] = 0x30
			}
		}
	}
	return img
}

// checkDeskFigures runs the Customer Service dashboard's queries for org
// against InfluxDB and compares them with the figures recomputed from log.
func checkDeskFigures(t *testing.T, db *influxlocal.Server, org string, t0 time.Time, log deskLog) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "grafana", "dashboards", "customer-service.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Query string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	filter := fmt.Sprintf("time >= '%s' AND time <= '%s'", t0.Add(-time.Hour).UTC().Format(time.RFC3339), t0.Add(6*time.Hour).UTC().Format(time.RFC3339))
	vars := strings.NewReplacer("$org", regexp.QuoteMeta(org), "$site", ".*", "$department", ".*", "$type", ".*", "$timeFilter", filter)
	query := func(title string, ref int) []influxdb.Series {
		t.Helper()
		for _, p := range dash.Panels {
			if p.Title == title {
				res, err := db.Query(context.Background(), vars.Replace(p.Targets[ref].Query))
				if err != nil {
					t.Fatalf("panel %q: %v", title, err)
				}
				return res
			}
		}
		t.Fatalf("no panel %q in the dashboard", title)
		return nil
	}
	// value is column col of the first row (0 when the query found nothing).
	value := func(res []influxdb.Series, tag, key, col string) float64 {
		for _, s := range res {
			if tag == "" || s.Tags[tag] == key {
				v, _ := s.Number(0, col)
				return v
			}
		}
		return 0
	}
	// Recompute.
	var incidents, thanks int
	for typ, n := range log.types {
		if typ == string(incident.TypeThanks) {
			thanks += n
		} else {
			incidents += n
		}
	}
	errs := 0
	for _, n := range log.refused {
		errs += n
	}
	lateCloses := 0
	for _, n := range log.late {
		lateCloses += n
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	type check struct {
		what      string
		got, want float64
	}
	// The points arrive through the spool and the writer: wait for the last.
	testwait.For(t, "the close in InfluxDB", func() bool {
		return value(query("Deadlines by department", 0), "department", "retail", "closed") == float64(len(log.closeMin))
	})
	checks := []check{
		{"incidents", value(query("Incidents, range", 0), "", "", "incidents"), float64(incidents)},
		{"thanks", value(query("Thanks, range", 0), "", "", "thanks"), float64(thanks)},
		{"share of thanks", value(query("Share of thanks", 0), "", "", "share of thanks"), float64(thanks) / float64(incidents+thanks)},
		{"closed within the deadline", value(query("Closed within the deadline", 0), "", "", "within deadline"), float64(len(log.closeMin)-lateCloses) / float64(len(log.closeMin))},
		{"late reactions", value(query("Late reactions", 0), "", "", "late"), float64(log.overdue)},
		{"interaction errors", value(query("Interaction errors", 0), "", "", "errors"), float64(errs)},
		{"minutes to close (retail)", value(query("Deadlines by department", 0), "department", "retail", "minutes to close"), mean(log.closeMin)},
		{"passed on (retail)", value(query("Passing on by department", 0), "department", "retail", "passed on"), float64(len(log.passMin))},
		{"minutes to pass on (retail)", value(query("Passing on by department", 0), "department", "retail", "minutes to pass on"), mean(log.passMin)},
		{"late reactions (retail)", value(query("Late reactions by department", 0), "department", "retail", "late reactions"), float64(log.overdue)},
		{"no remark number (retail)", value(query("Interaction errors by department", 0), "department", "retail", "no remark number"), float64(log.refused[incident.ErrCodeRemark])},
		{"illegible name (retail)", value(query("Interaction errors by department", 0), "department", "retail", "illegible name"), float64(log.refused[incident.ErrCodeName])},
	}
	for ch, n := range log.registered {
		checks = append(checks, check{"channel " + ch, value(query("Channels", 0), "channel", ch, "requests"), float64(n)})
	}
	for typ, n := range log.types {
		checks = append(checks, check{"category " + typ, value(query("Incidents by category", 0), "type", typ, "incidents"), float64(n)})
	}
	for reason, n := range log.late {
		checks = append(checks, check{"reason " + reason, value(query("Reasons for long service", 0), "reason", reason, "incidents"), float64(n)})
	}
	for _, c := range checks {
		if math.Abs(c.got-c.want) > 0.05 {
			t.Errorf("dashboard %s = %v, recomputed %v", c.what, c.got, c.want)
		}
	}
	t.Logf("Customer Service figures of %s checked: %d against the recomputation", org, len(checks))
}
