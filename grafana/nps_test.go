package grafana

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/internal/influxdb"
	"github.com/semko/semko/internal/influxlocal"
)

// npsAnswer is one seeded survey answer, as backend/survey writes it: the
// vote point, its reason points, its comment point and, for a detractor,
// its follow-up point.
type npsAnswer struct {
	org, site, counter, service, channel string
	score                                int
	reasons                              []string
	comment                              string
	ago                                  time.Duration
	// follow-up of a detractor: "open", "overdue", "in_time", "late".
	followUp string
}

var npsAnswers = []npsAnswer{
	{"city", "centre", "c1", "passport", "email", 10, []string{"speed"}, "", 2 * time.Minute, ""},
	{"city", "centre", "c1", "passport", "email", 9, nil, "Бързо и любезно.", 3 * time.Minute, ""},
	{"city", "centre", "c1", "tax", "email", 3, []string{"speed", "information"}, "Чаках 40 минути.", 4 * time.Minute, "open"},
	{"city", "centre", "c2", "tax", "qr", 6, []string{"process"}, "Too many forms", 5 * time.Minute, "overdue"},
	{"city", "centre", "c2", "passport", "qr", 8, []string{"materials"}, "", 5*time.Minute + 20*time.Second, ""},
	{"city", "centre", "c2", "passport", "sms", 7, nil, "", 6 * time.Minute, ""},
	{"city", "north", "tiny", "passport", "email", 0, []string{"information", "other"}, "Никой не ми обясни нищо", 7 * time.Minute, "in_time"},
	{"city", "north", "tiny", "tax", "qr", 10, []string{"speed"}, "", 8 * time.Minute, ""},
	{"city", "north", "tiny", "tax", "email", 5, []string{"materials"}, "", 9 * time.Minute, "late"},
	{"water", "main", "w1", "passport", "email", 9, nil, "", 10 * time.Minute, ""},
	{"water", "main", "w1", "passport", "sms", 10, []string{"process"}, "Easy", 11 * time.Minute, ""},
	{"water", "main", "w1", "tax", "email", 2, []string{"speed"}, "Слишком долго", 12 * time.Minute, "in_time"},
	{"water", "main", "w1", "tax", "qr", 9, nil, "", 12*time.Minute + 30*time.Second, ""},
	{"water", "main", "w1", "passport", "email", 8, []string{"information"}, "", 13 * time.Minute, ""},
}

// npsUnanswered are invitations nobody answered, per org/site/service.
var npsUnanswered = []struct {
	org, site, service string
	n                  int
}{{"city", "centre", "passport", 5}, {"city", "north", "tax", 3}, {"water", "main", "passport", 4}}

func npsCat(score int) (promoter, detractor int) {
	switch {
	case score >= 9:
		return 1, 0
	case score <= 6:
		return 0, 1
	}
	return 0, 0
}

// npsSeedLines renders the answers as line protocol, in the shapes
// backend/survey and backend/intake write.
func npsSeedLines(now time.Time) []string {
	var lines []string
	for i, a := range npsAnswers {
		ts := now.Add(-a.ago)
		p, d := npsCat(a.score)
		tags := fmt.Sprintf("counter=%s,org=%s,service=%s,site=%s", a.counter, a.org, a.service, a.site)
		lines = append(lines, fmt.Sprintf(`vote,channel=%s,counter=%s,device=kp-%s,operator=op-%s,org=%s,scale=nps11,service=%s,site=%s score=%di,satisfied=%di,negative=%di,latency_ms=0i,service_s=0i,seq=%di,valid="true",activation="nps-%d" %d`,
			a.channel, a.counter, a.counter, a.counter, a.org, a.service, a.site, a.score, p, d, i+1, i+1, ts.UnixNano()))
		for _, r := range a.reasons {
			lines = append(lines, fmt.Sprintf("nps_reason,channel=%s,counter=%s,driver=%s,org=%s,service=%s,site=%s score=%di,promoter=%di,detractor=%di %d",
				a.channel, a.counter, r, a.org, a.service, a.site, a.score, p, d, ts.UnixNano()))
		}
		if a.comment != "" {
			lines = append(lines, fmt.Sprintf(`nps_comment,channel=%s,%s score=%di,reasons="%s",comment="%s" %d`,
				a.channel, tags, a.score, strings.Join(a.reasons, ","), a.comment, ts.UnixNano()))
		}
		if a.channel != "qr" {
			lines = append(lines, fmt.Sprintf("nps_invitation,channel=%s,%s sent=1i %d", a.channel, tags, ts.Add(-time.Hour).UnixNano()))
		}
		if a.followUp != "" {
			open, overdue, closed, inTime := 0, 0, 0, 0
			switch a.followUp {
			case "open":
				open = 1
			case "overdue":
				open, overdue = 1, 1
			case "in_time":
				closed, inTime = 1, 1
			case "late":
				closed, overdue = 1, 1
			}
			f := fmt.Sprintf("id=%di,score=%di,open=%di,overdue=%di", i+1, a.score, open, overdue)
			if closed == 1 {
				f += fmt.Sprintf(",in_time=%di,closed=1i", inTime)
			}
			lines = append(lines, fmt.Sprintf("nps_followup,counter=%s,org=%s,site=%s %s %d", a.counter, a.org, a.site, f, ts.UnixNano()+int64(i+1)))
		}
	}
	for j, u := range npsUnanswered {
		for k := range u.n {
			lines = append(lines, fmt.Sprintf("nps_invitation,channel=email,counter=x,org=%s,service=%s,site=%s sent=1i %d",
				u.org, u.service, u.site, now.Add(-time.Duration(100+10*j+k)*time.Minute).UnixNano()))
		}
	}
	return lines
}

// npsOf is the NPS of the answers keep selects, and their count.
func npsOf(keep func(npsAnswer) bool) (float64, int) {
	var n, p, d int
	for _, a := range npsAnswers {
		if keep(a) {
			pp, dd := npsCat(a.score)
			n, p, d = n+1, p+pp, d+dd
		}
	}
	if n == 0 {
		return math.NaN(), 0
	}
	return 100 * float64(p-d) / float64(n), n
}

// TestNPSFigures runs every query of the NPS dashboard against a real
// InfluxDB holding the seeded answers, and compares each figure with the
// one computed here from npsAnswers.
func TestNPSFigures(t *testing.T) {
	srv := influxlocal.StartForTest(t)
	now := time.Now().UTC()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL()+"/write?db="+srv.Database(),
		strings.NewReader(strings.Join(npsSeedLines(now), "\n")))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("seed: %s", resp.Status)
	}
	var d dashboard
	for _, x := range loadDashboards(t) {
		if x.UID == "semko-nps" {
			d = x
		}
	}
	if d.UID == "" {
		t.Fatal("no NPS dashboard")
	}
	all := func(npsAnswer) bool { return true }
	byTitle := map[string]panel{}
	for _, p := range d.allPanels() {
		byTitle[p.Title] = p
	}
	runTarget := func(t *testing.T, title string, target int, set map[string]string) []influxdb.Series {
		t.Helper()
		p, ok := byTitle[title]
		if !ok || target >= len(p.Targets) {
			t.Fatalf("no panel %q target %d", title, target)
		}
		res, err := srv.Query(t.Context(), substitute(d, p.Targets[target].Query, p.TimeFrom, now, set))
		if err != nil {
			t.Fatalf("%s: %v", title, err)
		}
		if len(res) == 0 {
			t.Fatalf("%s: no series", title)
		}
		return res
	}
	run := func(t *testing.T, title string, set map[string]string) []influxdb.Series {
		t.Helper()
		return runTarget(t, title, 0, set)
	}
	num := func(t *testing.T, s influxdb.Series, row int, col string) float64 {
		t.Helper()
		v, ok := s.Number(row, col)
		if !ok {
			t.Fatalf("no number in %s row %d of %v", col, row, s)
		}
		return v
	}
	near := func(t *testing.T, what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}

	// Every panel query runs and returns rows (the structure test checks
	// the rest of the dashboard).
	for title, p := range byTitle {
		for i := range p.Targets {
			t.Run("runs/"+title+"/"+p.Targets[i].RefID, func(t *testing.T) { runTarget(t, title, i, nil) })
		}
	}

	t.Run("totals", func(t *testing.T) {
		want, n := npsOf(all)
		near(t, "NPS", num(t, run(t, "NPS", nil)[0], 0, "NPS"), want)
		near(t, "answers", num(t, run(t, "Answers", nil)[0], 0, "answers"), float64(n))
		// An organisation chosen: only its answers.
		wantCity, _ := npsOf(func(a npsAnswer) bool { return a.org == "city" })
		near(t, "NPS of city", num(t, run(t, "NPS", map[string]string{"org": "city"})[0], 0, "NPS"), wantCity)
		invited := 0
		answered := 0
		for _, a := range npsAnswers {
			if a.channel != "qr" {
				invited++
				answered++
			}
		}
		for _, u := range npsUnanswered {
			invited += u.n
		}
		// The panel divides A by B (a Grafana transformation).
		a := num(t, runTarget(t, "Response rate", 0, nil)[0], 0, "answers")
		b := num(t, runTarget(t, "Response rate", 1, nil)[0], 0, "invitations")
		near(t, "answers to invitations", a, float64(answered))
		near(t, "invitations", b, float64(invited))
		near(t, "response rate", a/b, float64(answered)/float64(invited))
		var open, overdue, closed, inTime int
		for _, a := range npsAnswers {
			switch a.followUp {
			case "open":
				open++
			case "overdue":
				open++
				overdue++
			case "in_time":
				closed++
				inTime++
			case "late":
				closed++
			}
		}
		near(t, "open follow-ups", num(t, run(t, "Open follow-ups", nil)[0], 0, "open"), float64(open))
		near(t, "overdue follow-ups", num(t, run(t, "Overdue follow-ups", nil)[0], 0, "overdue"), float64(overdue))
		near(t, "closed within deadline", num(t, run(t, "Closed within deadline", nil)[0], 0, "in time"), float64(inTime)/float64(closed))
	})

	t.Run("over time", func(t *testing.T) {
		// substitute renders $__interval as 1m: buckets of one minute.
		type bucket struct{ n, p, d int }
		want := map[int64]*bucket{}
		for _, a := range npsAnswers {
			k := now.Add(-a.ago).Truncate(time.Minute).UnixNano()
			if want[k] == nil {
				want[k] = &bucket{}
			}
			p, d := npsCat(a.score)
			want[k].n++
			want[k].p += p
			want[k].d += d
		}
		series := run(t, "NPS over time", nil)[0]
		shares := run(t, "Promoters, passives, detractors", nil)[0]
		if len(series.Values) != len(want) || len(shares.Values) != len(want) {
			t.Fatalf("%d and %d buckets, want %d", len(series.Values), len(shares.Values), len(want))
		}
		for row := range series.Values {
			ns, err := series.Int(row, "time")
			if err != nil {
				t.Fatal(err)
			}
			ts := time.Unix(0, ns).UTC()
			b := want[ns]
			if b == nil {
				t.Fatalf("unexpected bucket %v", ts)
			}
			near(t, "NPS at "+ts.String(), num(t, series, row, "NPS"), 100*float64(b.p-b.d)/float64(b.n))
			near(t, "promoters at "+ts.String(), num(t, shares, row, "promoters"), float64(b.p)/float64(b.n))
			near(t, "passives at "+ts.String(), num(t, shares, row, "passives"), float64(b.n-b.p-b.d)/float64(b.n))
			near(t, "detractors at "+ts.String(), num(t, shares, row, "detractors"), float64(b.d)/float64(b.n))
		}
	})

	t.Run("breakdowns", func(t *testing.T) {
		check := func(title string, key func(npsAnswer) string, tagsOf func(map[string]string) string) {
			keys := map[string]bool{}
			for _, a := range npsAnswers {
				keys[key(a)] = true
			}
			res := run(t, title, nil)
			if len(res) != len(keys) {
				t.Errorf("%s: %d rows, want %d", title, len(res), len(keys))
			}
			for _, s := range res {
				k := tagsOf(s.Tags)
				want, n := npsOf(func(a npsAnswer) bool { return key(a) == k })
				near(t, title+" "+k, num(t, s, 0, "NPS"), want)
				near(t, title+" "+k+" answers", num(t, s, 0, "answers"), float64(n))
			}
		}
		check("NPS by organisation", func(a npsAnswer) string { return a.org }, func(m map[string]string) string { return m["org"] })
		check("NPS by site", func(a npsAnswer) string { return a.org + "/" + a.site }, func(m map[string]string) string { return m["org"] + "/" + m["site"] })
		check("NPS by service", func(a npsAnswer) string { return a.service }, func(m map[string]string) string { return m["service"] })

		// Drivers: an answer counts for every reason it names.
		drivers := map[string]bool{}
		for _, a := range npsAnswers {
			for _, r := range a.reasons {
				drivers[r] = true
			}
		}
		res := run(t, "NPS by driver", nil)
		if len(res) != len(drivers) {
			t.Fatalf("%d drivers, want %d", len(res), len(drivers))
		}
		for _, s := range res {
			dr := s.Tags["driver"]
			want, n := npsOf(func(a npsAnswer) bool { return slices.Contains(a.reasons, dr) })
			near(t, "driver "+dr, num(t, s, 0, "NPS"), want)
			near(t, "driver "+dr+" answers", num(t, s, 0, "answers"), float64(n))
		}
	})

	t.Run("comments and follow-ups", func(t *testing.T) {
		var want []string
		for _, a := range npsAnswers {
			if a.comment != "" {
				want = append(want, a.comment)
			}
		}
		s := run(t, "Comments of the period", nil)[0]
		col := s.Col("comment")
		var got []string
		for _, row := range s.Values {
			got = append(got, fmt.Sprint(row[col]))
		}
		if got[0] != want[0] {
			t.Errorf("newest comment %q, want %q", got[0], want[0])
		}
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("comments %q, want %q", got, want)
		}
		openBySite := map[string]int{}
		for _, a := range npsAnswers {
			if a.followUp == "open" || a.followUp == "overdue" {
				openBySite[a.org+"/"+a.site]++
			}
		}
		res := run(t, "Open follow-ups by site", nil)
		if len(res) != len(openBySite) {
			t.Fatalf("%d sites with open follow-ups, want %d", len(res), len(openBySite))
		}
		for _, s := range res {
			k := s.Tags["org"] + "/" + s.Tags["site"]
			near(t, "open at "+k, num(t, s, 0, "open"), float64(openBySite[k]))
		}
	})
}
