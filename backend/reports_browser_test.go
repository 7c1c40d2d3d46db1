package backend_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/xuri/excelize/v2"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/health/diagnostics"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
)

// A manager downloads reports from the console's Reports page in a real
// browser: the PDF's text (pdftotext) and the spreadsheet hold the
// figures of her organisation, computed here from the votes written, and
// nothing of the other organisation. Then she schedules a report and
// deletes it again.
func TestReportDownloadInBrowser(t *testing.T) {
	chromium(t)
	if testing.Short() {
		t.Skip("end-to-end: starts InfluxDB and Chromium")
	}
	if _, err := exec.LookPath("pdftotext"); err != nil {
		t.Skip("pdftotext (poppler-utils) is not installed")
	}
	db := influxlocal.StartForTest(t)
	f := newConsoleFixture(t, func(cfg *backend.Config, _ *fleet.Model) {
		cfg.Influx.URL = db.URL()
		cfg.Rollup.Disabled = true
		cfg.Diagnostics.Schedule = map[string]string{}
		for _, c := range diagnostics.Checks {
			cfg.Diagnostics.Schedule[c] = "off"
		}
	})
	siteIn, siteOut := f.model.Orgs[0].Sites[0], f.model.Orgs[1].Sites[0]

	// Votes of a Wednesday at noon (UTC): inside that week in any zone.
	day := time.Date(2026, 11, 18, 12, 0, 0, 0, time.UTC)
	scoresIn := []int{5, 5, 5, 4, 4, 3, 2, 1} // 8 votes, 5 satisfied: 62.5%
	scoresOut := []int{1, 1, 2}               // the other organisation's
	var lines []string
	for i, s := range scoresIn {
		lines = append(lines, voteLine(siteIn, "op-in", s, day.Add(time.Duration(i)*time.Minute)))
	}
	for i, s := range scoresOut {
		lines = append(lines, voteLine(siteOut, "op-out", s, day.Add(time.Duration(i)*time.Minute)))
	}
	resp, err := http.Post(db.URL()+"/write?db="+db.Database(), "text/plain", strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("seed: %s", resp.Status)
	}

	ctx := newBrowser(t, 1280, 900)
	dir := t.TempDir()
	downloads := make(chan string, 4)
	if err := chromedp.ListenBrowser(ctx, func(ev any) {
		if e, ok := ev.(*browser.EventDownloadProgress); ok && e.State == browser.DownloadProgressStateCompleted {
			select {
			case downloads <- e.GUID:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, f.base, f.accountsOf[access.Manager], f.passwords[access.Manager])
	events := true
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &events}); err != nil {
		t.Fatalf("allow downloads: %v", err)
	}

	// download fills the form as a person would and waits for the file.
	download := func(format string) []byte {
		t.Helper()
		if err := chromedp.Do(ctx,
			chromedp.Navigate(f.base+"/reports"),
			chromedp.WaitVisible(chromedp.CSS(`form[action="/reports/download"] button`)),
			chromedp.SetValue(chromedp.CSS(`form[action="/reports/download"] select[name="place"]`), f.orgIn),
			chromedp.SetValue(chromedp.CSS(`form[action="/reports/download"] select[name="period"]`), "week"),
			chromedp.SetValue(chromedp.CSS(`form[action="/reports/download"] input[name="date"]`), day.Format(time.DateOnly)),
			chromedp.SetValue(chromedp.CSS(`form[action="/reports/download"] select[name="format"]`), format),
			chromedp.SetValue(chromedp.CSS(`form[action="/reports/download"] select[name="lang"]`), "en"),
		); err != nil {
			t.Fatalf("fill the form: %v", err)
		}
		if format == "pdf" {
			screenshot(t, ctx, "reports-form-desktop.png", "")
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`form[action="/reports/download"] button`))); err != nil {
			t.Fatalf("download: %v", err)
		}
		select {
		case guid := <-downloads:
			b, err := os.ReadFile(filepath.Join(dir, guid))
			if err != nil {
				t.Fatal(err)
			}
			return b
		case <-time.After(90 * time.Second):
			t.Fatalf("no %s download within 90 s", format)
		}
		return nil
	}

	pdf := download("pdf")
	if !strings.HasPrefix(string(pdf), "%PDF-") {
		t.Fatalf("the download is not a PDF: %.40q", pdf)
	}
	path := filepath.Join(dir, "report.pdf")
	if err := os.WriteFile(path, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", "-layout", path, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, out)
	}
	text := strings.Join(strings.Fields(string(out)), " ")
	for _, want := range []string{"Organisation: " + f.orgIn, "Week 47", siteIn.ID, "op-in", "62.5%"} {
		if !strings.Contains(text, want) {
			t.Errorf("the PDF lacks %q:\n%s", want, out)
		}
	}
	for _, not := range []string{f.orgOut, siteOut.ID, "op-out"} {
		if strings.Contains(text, not) {
			t.Errorf("the PDF holds %q of another organisation:\n%s", not, out)
		}
	}

	csv := string(download("csv"))
	for _, want := range []string{"Votes,8\n", "Satisfied,5\n"} {
		if !strings.Contains(csv, want) {
			t.Errorf("the CSV lacks %q:\n%s", want, csv)
		}
	}
	if strings.Contains(csv, f.orgOut) || strings.Contains(csv, "op-out") {
		t.Errorf("the CSV holds the other organisation:\n%s", csv)
	}

	xlsx := download("xlsx")
	book, err := excelize.OpenReader(strings.NewReader(string(xlsx)))
	if err != nil {
		t.Fatalf("the XLSX does not open: %v", err)
	}
	defer book.Close()
	var cells []string
	for _, sheet := range book.GetSheetList() {
		rows, err := book.GetRows(sheet)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			cells = append(cells, strings.Join(r, "|"))
		}
	}
	all := strings.Join(cells, "\n")
	if !strings.Contains(all, "Votes|8") || !strings.Contains(all, "op-in") || strings.Contains(all, "op-out") || strings.Contains(all, f.orgOut) {
		t.Errorf("the XLSX's cells:\n%s", all)
	}

	// A scheduled report: added, listed, deleted, from the same page.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(f.base+"/reports"),
		chromedp.WaitVisible(chromedp.CSS(`#subscriptions`)),
		chromedp.SetValue(chromedp.CSS(`form[action="/reports/subscriptions"] select[name="place"]`), f.orgIn+"/"+siteIn.ID),
		chromedp.SetValue(chromedp.CSS(`form[action="/reports/subscriptions"] select[name="period"]`), "month"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/reports/subscriptions"] input[name="recipients"]`), "boss@example.org"),
		chromedp.Click(chromedp.CSS(`form[action="/reports/subscriptions"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`#subscriptions table`)),
	); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	listed, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#subscriptions table`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(listed, "boss@example.org") {
		t.Errorf("subscription not listed: %q", listed)
	}
	screenshot(t, ctx, "reports-subscriptions-desktop.png", "")
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844), chromedp.ScrollIntoView(chromedp.CSS(`#subscriptions table`))); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "reports-subscriptions-phone.png", "")
	subs, err := f.app.ReportSubscriptions().Subscriptions(context.Background())
	if err != nil || len(subs) != 1 || subs[0].Account != f.accountsOf[access.Manager] || subs[0].Site != siteIn.ID {
		t.Fatalf("stored: %+v %v", subs, err)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`form[action="/reports/subscriptions/%d/delete"] button`, subs[0].ID))),
		// The page after the delete: the list is gone (the flash of
		// the subscription is already there, so it says nothing).
		chromedp.WaitNotPresent(chromedp.CSS(`#subscriptions table`)),
	); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if left, _ := f.app.ReportSubscriptions().Subscriptions(context.Background()); len(left) != 0 {
		t.Errorf("left after delete: %+v", left)
	}
}

// voteLine is a valid keypad vote as the intake writes it.
func voteLine(site fleet.Site, op string, score int, at time.Time) string {
	c := site.Counters[0]
	return fmt.Sprintf(`vote,channel=keypad,counter=%s,device=%s,operator=%s,org=%s,scale=csat5,service=cash,site=%s score=%di,satisfied=%di,negative=%di,service_s=300i,valid="true" %d`,
		c.ID, c.Device, op, site.Org, site.ID, score, b2i(score >= 4), b2i(score <= 2), at.UnixNano())
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
