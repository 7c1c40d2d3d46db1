package report

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/internal/influxdb"
	"github.com/semko/semko/internal/influxlocal"
)

// pressed is one vote the test wrote, kept to recompute the figures.
type pressed struct {
	org, site, op string
	score         int
	valid, nps    bool
	serviceS      int
	at            time.Time
}

type act struct {
	org, site, op string
	closed, voted bool
	at            time.Time
}

// fixture is what the test wrote into a real InfluxDB.
type fixture struct {
	db    *influxdb.Client
	url   string
	votes []pressed
	acts  []act
	beats map[string]map[time.Time]bool // device -> hours with a heartbeat
	sites map[string]string             // device -> site
	loc   *time.Location
}

var sofia = mustZone("Europe/Sofia")

func mustZone(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

// week is the report's week: Monday 23 November 2026 in Sofia.
var weekStart = time.Date(2026, 11, 23, 0, 0, 0, 0, sofia)

// seedFixture writes three weeks of votes, activations and heartbeats for
// two organisations: "bank" (three sites) and "post" (one).
func seedFixture(t *testing.T) *fixture {
	t.Helper()
	srv := influxlocal.StartForTest(t)
	db, err := influxdb.New(influxdb.Options{URL: srv.URL(), Bucket: srv.Database()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	fx := &fixture{db: db, url: srv.URL(), beats: map[string]map[time.Time]bool{}, sites: map[string]string{}, loc: sofia}
	rng := rand.New(rand.NewPCG(13, 13))
	type place struct{ org, site string }
	places := []place{{"bank", "b-centre"}, {"bank", "b-north"}, {"bank", "b-south"}, {"post", "p-one"}}
	ops := map[string][]string{"bank": {"op-ana", "op-boris", "op-vera"}, "post": {"op-petar"}}
	var lines []string
	start := weekStart.AddDate(0, 0, -8) // from the Sunday before the previous week
	for day := start; day.Before(weekStart.AddDate(0, 0, 8)); day = day.AddDate(0, 0, 1) {
		for pi, pl := range places {
			dev := fmt.Sprintf("kp-%d", pi)
			fx.sites[dev] = pl.site
			// Opening hours 08-18, more votes where the site is busy; b-south
			// is quiet (a few votes, for the fair ranking).
			n := 6 + rng.IntN(10)
			if pl.site == "b-south" {
				n = rng.IntN(2)
			}
			for range n {
				at := day.Add(time.Duration(8*3600+rng.IntN(10*3600)) * time.Second)
				op := ops[pl.org][rng.IntN(len(ops[pl.org]))]
				// Cumulative shares of scores 1..4 (5 takes the rest): most
				// customers are content, b-north less so.
				cum := map[string][4]float64{"b-centre": {.05, .10, .20, .50}, "b-north": {.12, .22, .40, .70},
					"b-south": {.03, .06, .15, .45}, "p-one": {.08, .15, .30, .60}}[pl.site]
				score, u := 5, rng.Float64()
				for i, c := range cum {
					if u < c {
						score = i + 1
						break
					}
				}
				v := pressed{org: pl.org, site: pl.site, op: op, score: score, valid: rng.IntN(10) != 0,
					nps: rng.IntN(12) == 0, serviceS: 60 + rng.IntN(600), at: at}
				if v.nps {
					v.score = rng.IntN(11)
				}
				fx.votes = append(fx.votes, v)
				lines = append(lines, voteLine(v, dev, rng.IntN(2) == 0))
				closed := rng.IntN(8) != 0
				a := act{org: pl.org, site: pl.site, op: op, closed: closed, voted: closed && v.valid && !v.nps, at: at.Add(-time.Minute)}
				fx.acts = append(fx.acts, a)
				lines = append(lines, actLine(a, dev))
			}
			// Heartbeats: every hour the site is open, but kp-1 misses
			// Wednesdays.
			for h := 7; h < 19; h++ {
				if dev == "kp-1" && day.Weekday() == time.Wednesday {
					continue
				}
				at := day.Add(time.Duration(h)*time.Hour + 7*time.Minute)
				hr := at.Truncate(time.Hour)
				if fx.beats[dev] == nil {
					fx.beats[dev] = map[time.Time]bool{}
				}
				fx.beats[dev][hr] = true
				lines = append(lines, fmt.Sprintf("heartbeat,counter=c1,device=%s,org=%s,site=%s uptime_s=%di %d",
					dev, pl.org, pl.site, h*3600, at.UnixNano()))
			}
		}
	}
	write(t, srv, lines)
	return fx
}

// voteLine encodes a vote as the intake does; oldTag writes valid as the
// tag it was before issue 16.
func voteLine(v pressed, dev string, oldTag bool) string {
	scale := "csat5"
	sat, neg := v.score >= 4, v.score <= 2
	if v.nps {
		scale = "nps11"
		sat, neg = v.score >= 9, v.score <= 6
	}
	tags := fmt.Sprintf("vote,channel=keypad,counter=c1,device=%s,operator=%s,org=%s,scale=%s,service=passport,site=%s",
		dev, v.op, v.org, scale, v.site)
	fields := fmt.Sprintf("score=%di,satisfied=%di,negative=%di,service_s=%di", v.score, b2i(sat), b2i(neg), v.serviceS)
	if oldTag {
		tags += fmt.Sprintf(",valid=%t", v.valid)
	} else {
		fields += fmt.Sprintf(`,valid="%t"`, v.valid)
	}
	return fmt.Sprintf("%s %s %d", tags, fields, v.at.UnixNano())
}

func actLine(a act, dev string) string {
	fields := "service_s=300i,window_s=30i"
	if a.closed {
		fields += fmt.Sprintf(",voted=%di,closed=1i", b2i(a.voted))
	}
	return fmt.Sprintf("activation,channel=keypad,counter=c1,device=%s,operator=%s,org=%s,service=passport,site=%s,valid=true %s %d",
		dev, a.op, a.org, a.site, fields, a.at.UnixNano())
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func write(t *testing.T, srv *influxlocal.Server, lines []string) {
	t.Helper()
	for i := 0; i < len(lines); i += 5000 {
		chunk := lines[i:min(i+5000, len(lines))]
		resp, err := http.Post(srv.URL()+"/write?db="+srv.Database(), "text/plain", strings.NewReader(strings.Join(chunk, "\n")))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("write: %s", resp.Status)
		}
	}
}

// expect recomputes the figures of [from, to) for votes and activations
// keep selects, straight from what was written.
func (fx *fixture) expect(from, to time.Time, keep func(org, site, op string) bool) Figures {
	var f Figures
	for _, v := range fx.votes {
		if v.at.Before(from) || !v.at.Before(to) || !keep(v.org, v.site, v.op) || !v.valid || v.nps {
			continue
		}
		f.Votes++
		f.ScoreSum += int64(v.score)
		f.Satisfied += int64(b2i(v.score >= 4))
		f.Negative += int64(b2i(v.score <= 2))
		f.ServiceSum += int64(v.serviceS)
	}
	for _, a := range fx.acts {
		if a.at.Before(from) || !a.at.Before(to) || !keep(a.org, a.site, a.op) || !a.closed {
			continue
		}
		f.Activations++
		f.Voted += int64(b2i(a.voted))
	}
	return f
}

func TestReportFiguresEqualWhatWasPressed(t *testing.T) {
	fx := seedFixture(t)
	store := alert.NewMemStore()
	ctx := context.Background()
	// Notices: two in the week for bank (one acknowledged after 12 min),
	// one for post, one for bank the week before.
	saveAlert(t, store, alert.KindNegativeVote, "bank", "b-centre", weekStart.Add(30*time.Hour), 12*time.Minute)
	saveAlert(t, store, alert.KindNegativeVote, "bank", "b-north", weekStart.Add(50*time.Hour), 0)
	saveAlert(t, store, alert.KindNegativeVote, "post", "p-one", weekStart.Add(50*time.Hour), 3*time.Minute)
	saveAlert(t, store, alert.KindNegativeVote, "bank", "b-north", weekStart.Add(-50*time.Hour), time.Minute)
	saveDevice(t, store, alert.KindOffline, "bank", "b-north", "kp-1")
	saveDevice(t, store, alert.KindWarrantyEnd, "bank", "b-centre", "kp-0")
	saveDevice(t, store, alert.KindOffline, "post", "p-one", "kp-3")

	now := weekStart.AddDate(0, 0, 9) // the week is over
	b := &Builder{DB: fx.db, Alerts: store, Now: func() time.Time { return now }}
	p, err := NewPeriod(Week, weekStart.Add(60*time.Hour), sofia)
	if err != nil {
		t.Fatal(err)
	}
	bankScope := access.Scope{Orgs: []string{"bank"}}
	rep, err := b.Build(ctx, Request{Org: "bank", Period: p, Lang: "en", Caller: bankScope})
	if err != nil {
		t.Fatal(err)
	}
	inBank := func(org, _, _ string) bool { return org == "bank" }
	if want := fx.expect(p.Start, p.End, inBank); rep.Totals != want {
		t.Errorf("totals\n got %+v\nwant %+v", rep.Totals, want)
	}
	if want := fx.expect(p.Start.AddDate(0, 0, -7), p.Start, inBank); rep.Prev != want {
		t.Errorf("previous week\n got %+v\nwant %+v", rep.Prev, want)
	}
	if rep.Totals.Votes < 100 {
		t.Fatalf("only %d votes: the fixture is too thin to test", rep.Totals.Votes)
	}
	// Scores, days and hour of week.
	var scores [6]int64
	for _, v := range fx.votes {
		if v.org == "bank" && v.valid && !v.nps && !v.at.Before(p.Start) && v.at.Before(p.End) {
			scores[v.score]++
		}
	}
	if rep.Scores != scores {
		t.Errorf("scores %v, want %v", rep.Scores, scores)
	}
	if len(rep.Daily) != 7 {
		t.Fatalf("%d days, want 7", len(rep.Daily))
	}
	for _, d := range rep.Daily {
		want := fx.expect(d.Day, d.Day.AddDate(0, 0, 1), inBank)
		want.ServiceSum = 0 // days carry no service time
		if d.Figures != want {
			t.Errorf("day %s\n got %+v\nwant %+v", d.Day, d.Figures, want)
		}
	}
	var hours [7][24]Cell
	for _, v := range fx.votes {
		if v.org == "bank" && v.valid && !v.nps && !v.at.Before(p.Start) && v.at.Before(p.End) {
			at := v.at.In(sofia)
			c := &hours[(int(at.Weekday())+6)%7][at.Hour()]
			c.Votes++
			c.Satisfied += int64(b2i(v.score >= 4))
		}
	}
	if rep.HourMap != hours {
		t.Errorf("hour of week differs")
	}
	// Sites: figures and the fair ranking.
	prior, _ := rep.Totals.Share()
	if len(rep.Sites) != 3 {
		t.Fatalf("sites %+v, want the three of bank", rep.Sites)
	}
	for i, s := range rep.Sites {
		want := fx.expect(p.Start, p.End, func(org, site, _ string) bool { return org == "bank" && site == s.Name })
		if s.Figures != want {
			t.Errorf("site %s\n got %+v\nwant %+v", s.Name, s.Figures, want)
		}
		shrunk := (float64(want.Satisfied) + PriorWeight*prior) / (float64(want.Votes) + PriorWeight)
		if diff := s.Shrunk - shrunk; diff > 1e-12 || diff < -1e-12 {
			t.Errorf("site %s shrunk %v, want %v", s.Name, s.Shrunk, shrunk)
		}
		if i > 0 && rep.Sites[i-1].Shrunk < s.Shrunk {
			t.Errorf("sites not ranked by shrunk share: %+v", rep.Sites)
		}
	}
	for _, o := range rep.Ops {
		if o.Org != "bank" || o.Name == "op-petar" {
			t.Errorf("operator %s/%s is outside the scope", o.Org, o.Name)
		}
	}
	// Notices and health.
	if rep.Notices.Count != 2 || rep.Notices.Acknowledged != 1 || rep.Notices.MedianAck != 12*time.Minute {
		t.Errorf("notices %+v, want 2, 1 acknowledged after 12m", rep.Notices)
	}
	if rep.Health.OpenFindings != 2 || rep.Health.RemindersDue != 1 {
		t.Errorf("health %+v, want 2 findings (1 reminder)", rep.Health)
	}
	var seen int
	for dev, hrs := range fx.beats {
		if dev == "kp-3" {
			continue // post's
		}
		for h := range hrs {
			if !h.Before(p.Start) && h.Before(p.End) {
				seen++
			}
		}
	}
	if want := float64(seen) / (3 * 7 * 24); rep.Health.Devices != 3 || abs(rep.Health.Availability-want) > 1e-9 {
		t.Errorf("health: %d devices, availability %v; want 3, %v", rep.Health.Devices, rep.Health.Availability, want)
	}

	// One site, one operator.
	rep2, err := b.Build(ctx, Request{Org: "bank", Site: "b-north", Operator: "op-ana", Period: p, Lang: "bg", Caller: bankScope})
	if err != nil {
		t.Fatal(err)
	}
	want := fx.expect(p.Start, p.End, func(org, site, op string) bool { return org == "bank" && site == "b-north" && op == "op-ana" })
	if rep2.Totals != want {
		t.Errorf("b-north/op-ana\n got %+v\nwant %+v", rep2.Totals, want)
	}

	// The PDF, read back as text and rendered as a picture.
	checkPDF(t, rep, []string{"Customer satisfaction report", "Week 48: 23 November 2026 – 29 November 2026",
		"Organisation: bank", "b-centre", "b-north", "b-south", "Ranking of operators", "op-ana",
		loc{"en"}.pct(mustShare(rep.Totals)), loc{"en"}.num(rep.Totals.Votes)})
	repBG := *rep
	repBG.Request.Lang = "bg"
	checkPDF(t, &repBG, []string{"Отчет за удовлетвореността на клиентите", "23 ноември 2026 г.", "Класиране на обектите",
		"Доволни", loc{"bg"}.pct(mustShare(rep.Totals))})
	repRU := *rep
	repRU.Request.Lang = "ru"
	checkPDF(t, &repRU, []string{"Отчёт об удовлетворённости клиентов", "23 ноября 2026 г.", "Рейтинг сотрудников"})
}

func mustShare(f Figures) float64 {
	s, _ := f.Share()
	return s
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

func saveAlert(t *testing.T, s *alert.MemStore, kind alert.Kind, org, site string, at time.Time, ack time.Duration) {
	t.Helper()
	a := alert.Alert{Kind: kind, Severity: alert.SeverityWarning, Subject: alert.Subject{Org: org, Site: site},
		State: alert.StateFiring, StartsAt: at, LastSeen: at, UpdatedAt: at, Count: 1}
	if ack > 0 {
		a.State, a.AckedAt, a.UpdatedAt = alert.StateAcknowledged, at.Add(ack), at.Add(ack)
	}
	if err := s.Save(context.Background(), &a, nil); err != nil {
		t.Fatal(err)
	}
}

func saveDevice(t *testing.T, s *alert.MemStore, kind alert.Kind, org, site, dev string) {
	t.Helper()
	a := alert.Alert{Kind: kind, Severity: alert.SeverityWarning, Subject: alert.Subject{Org: org, Site: site, Device: dev},
		State: alert.StateFiring, StartsAt: weekStart, LastSeen: weekStart, UpdatedAt: weekStart, Count: 1}
	if err := s.Save(context.Background(), &a, nil); err != nil {
		t.Fatal(err)
	}
}

// checkPDF renders rep, extracts its text with pdftotext and renders page
// one with pdftoppm. With SEMKO_REPORT_PICTURE set, page one of the
// English report is copied there (docs/report-page1.png).
func checkPDF(t *testing.T, rep *Report, want []string) {
	t.Helper()
	dir := t.TempDir()
	var buf bytes.Buffer
	if err := rep.WritePDF(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "r.pdf")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if keep := os.Getenv("SEMKO_REPORT_KEEP_DIR"); keep != "" { // for looking at every page
		if err := os.WriteFile(filepath.Join(keep, "report-"+rep.Request.Lang+".pdf"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("pdftotext", "-layout", path, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, out)
	}
	text := strings.Join(strings.Fields(strings.ReplaceAll(string(out), "\u00a0", " ")), " ")
	for _, w := range want {
		w = strings.Join(strings.Fields(strings.ReplaceAll(w, "\u00a0", " ")), " ")
		if !strings.Contains(text, w) {
			t.Errorf("%s PDF lacks %q; text:\n%s", rep.Request.Lang, w, out)
		}
	}
	if n := strings.Count(string(out), "\f"); n < 3 {
		t.Errorf("%s PDF has %d pages, want at least 3", rep.Request.Lang, n)
	}
	if o, err := exec.Command("pdftoppm", "-png", "-r", "110", "-f", "1", "-l", "1", path, filepath.Join(dir, "p")).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm: %v\n%s", err, o)
	}
	png, err := os.ReadFile(filepath.Join(dir, "p-1.png"))
	if err != nil {
		t.Fatal(err)
	}
	if len(png) < 20000 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("page 1 rendered to %d bytes: not a picture of a page", len(png))
	}
	if dst := os.Getenv("SEMKO_REPORT_PICTURE"); dst != "" && rep.Request.Lang == "en" {
		if err := os.WriteFile(dst, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
