package grafana

import (
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/backend/rollup"
	"github.com/semko/semko/internal/influxdb"
	"github.com/semko/semko/internal/influxlocal"
)

// counterSpec is one counter of the seeded fleet: its votes' scores, in
// order, and how many activations it had (the first len(scores) voted).
type counterSpec struct {
	org, site, counter, operator string
	scores                       []int
	activations                  int
}

// seedFleet is the known population the figures are checked against.
// "tiny" has a perfect raw share on three votes; the fair ranking must not
// put it first.
var seedFleet = []counterSpec{
	{"city", "centre", "c1", "anna", []int{5, 5, 4, 4, 4, 3, 2, 1, 5, 4, 4, 5, 4, 5, 5, 4, 4, 5, 4, 4}, 26},
	{"city", "centre", "c2", "boris", []int{3, 2, 1, 4, 5, 2, 3, 4, 1, 2}, 18},
	{"city", "north", "tiny", "carla", []int{5, 5, 5}, 6},
	{"water", "main", "w1", "dina", []int{4, 4, 5, 5, 4, 3, 5, 4, 4, 2, 5, 4, 4, 5, 3}, 20},
}

var services = []string{"passport", "id-card", "tax"}

func device(c counterSpec) string { return "kp-" + c.counter }

// seedLines writes the fleet as line protocol, in the shape backend/intake/influx
// writes it (integers for 0/1 fields) and in the shape it wrote before
// issue 16 (valid a tag), mixed, all within the last half hour.
func seedLines(now time.Time) []string {
	lines := incidentSeedLines(now) // the incident desk's points (incidents_test.go)
	ts := func(i int) int64 { return now.Add(-time.Duration(i+1) * 20 * time.Second).UnixNano() }
	b := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	// vote writes a vote point in either shape: valid as a tag (before
	// issue 16) or as a string field (now). Both shapes sit in one shard,
	// as in the week of an upgrade, and every figure must count both.
	vote := func(oldShape, valid bool, tags, fields string, ts int64) string {
		if oldShape {
			return fmt.Sprintf("vote,%s,valid=%t %s %d", tags, valid, fields, ts)
		}
		return fmt.Sprintf("vote,%s %s,valid=\"%t\" %d", tags, fields, valid, ts)
	}
	for ci, c := range seedFleet {
		for i, s := range c.scores {
			svc := services[i%len(services)]
			lines = append(lines, vote(i%2 == 0, true,
				fmt.Sprintf("channel=keypad,counter=%s,device=%s,operator=%s,org=%s,service=%s,site=%s",
					c.counter, device(c), c.operator, c.org, svc, c.site),
				fmt.Sprintf("score=%di,satisfied=%di,negative=%di,latency_ms=2000i,service_s=%di,seq=%di,activation=\"a-%s-%d\"",
					s, b(s >= 4), b(s <= 2), 120+i*150, i+1, c.counter, i), ts(i)))
		}
		for i := range c.activations {
			lines = append(lines, fmt.Sprintf(
				"activation,channel=keypad,counter=%s,device=%s,operator=%s,org=%s,service=%s,site=%s,valid=true "+
					"service_s=300i,voted=%di,closed=1i,window_s=20i,seq=%di,activation=\"a-%s-%d\" %d",
				c.counter, device(c), c.operator, c.org, services[i%len(services)], c.site, b(i < len(c.scores)), 1000+i, c.counter, i, ts(i)))
		}
		// Noise the figures must ignore: a repeat press and NPS answers.
		lines = append(lines,
			vote(ci%2 == 0, false, fmt.Sprintf("channel=keypad,counter=%s,device=%s,operator=%s,org=%s,service=passport,site=%s",
				c.counter, device(c), c.operator, c.org, c.site), "score=1i,satisfied=0i,negative=1i,seq=900i", now.Add(-7*time.Second).UnixNano()),
			vote(ci%2 == 1, true, fmt.Sprintf("channel=web,counter=%s,device=%s,operator=%s,org=%s,scale=nps11,service=passport,site=%s",
				c.counter, device(c), c.operator, c.org, c.site), "score=10i,satisfied=1i,negative=0i,seq=901i", now.Add(-9*time.Second).UnixNano()))
		// Heartbeats every minute; kp-c2's key 1 is stuck.
		for m := range 30 {
			p1 := 10 + m
			if c.counter == "c2" {
				p1 = 5000 + 100*m
			}
			lines = append(lines, fmt.Sprintf(
				"heartbeat,counter=%s,device=%s,fw=1.4.2,org=%s,site=%s uptime_s=%di,rssi=-61i,temp_c=31.5,supply_v=5.0,outbox=%di,clock_offset_ms=-120i,"+
					"presses_1=%di,presses_2=3i,presses_3=9i,presses_4=40i,presses_5=77i,errors=0i,panel_ok=1i,backlight_ok=%di,config=\"org-3\" %d",
				c.counter, device(c), c.org, c.site, 3600+60*m, m%3, p1, b(c.counter != "w1"), now.Add(-time.Duration(m)*time.Minute-5*time.Second).UnixNano()))
		}
		lines = append(lines, fmt.Sprintf("presence,counter=%s,device=%s,org=%s,site=%s online=1i,bdseq=1i,boot_id=\"b-1\",fw=\"1.4.2\" %d",
			c.counter, device(c), c.org, c.site, now.Add(-2*time.Hour).UnixNano()))
	}
	// The NPS survey's points (nps_test.go), so every NPS panel has rows.
	lines = append(lines, npsSeedLines(now)...)
	at := func(d time.Duration) int64 { return now.Add(-d).UnixNano() }
	return append(lines,
		fmt.Sprintf(`presence,counter=tiny,device=kp-tiny,org=city,site=north online=0i,bdseq=1i %d`, at(10*time.Minute)),
		fmt.Sprintf(`alert,device=kp-tiny,kind=offline,org=city,severity=warning,site=north state="firing",message="kp-tiny offline for 10m" %d`, at(9*time.Minute)),
		fmt.Sprintf(`alert,device=kp-c2,kind=stuck_key,org=city,severity=warning,site=centre state="firing",message="key 1 stuck on kp-c2" %d`, at(20*time.Minute)),
		fmt.Sprintf(`alert,device=kp-c2,kind=stuck_key,org=city,severity=warning,site=centre state="acknowledged",message="key 1 stuck on kp-c2" %d`, at(15*time.Minute)),
		fmt.Sprintf(`alert,device=kp-w1,kind=dead_backlight,org=water,severity=warning,site=main state="resolved",message="backlight ok again" %d`, at(5*time.Minute)),
		fmt.Sprintf(`alert,device=kp-w1,kind=warranty_end,org=water,severity=info,site=main state="firing",message="warranty of kp-w1 ends in 30 days" %d`, at(time.Hour)),
	)
}

// influxEnv is a real InfluxDB holding the seeded fleet and one rollup run.
type influxEnv struct {
	srv *influxlocal.Server
	now time.Time
}

func startInflux(t *testing.T) influxEnv {
	t.Helper()
	srv := influxlocal.StartForTest(t)
	now := time.Now().UTC()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL()+"/write?db="+srv.Database(),
		strings.NewReader(strings.Join(seedLines(now), "\n")))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("seed: HTTP %s", resp.Status)
	}
	job, err := rollup.New(rollup.Options{URL: srv.URL(), Bucket: srv.Database(), Window: 30 * 24 * time.Hour, PriorWeight: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	if err := job.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	return influxEnv{srv: srv, now: now}
}

// timeFilter renders Grafana's $timeFilter for a panel: its own relative
// time (timeFrom) or the dashboard's default range, the last 24 hours.
func timeFilter(timeFrom string, now time.Time) string {
	switch {
	case timeFrom == "":
		return "time > now() - 24h"
	case timeFrom == "now/d":
		return "time >= '" + now.Truncate(24*time.Hour).Format(time.RFC3339) + "'"
	}
	return "time > now() - " + timeFrom
}

// substitute does what Grafana does to a query before sending it: query
// variables set to All become the regex .*, custom ones their current
// value, and the macros their values for the panel's time range.
func substitute(d dashboard, q, timeFrom string, now time.Time, set map[string]string) string {
	for _, v := range d.Templating.List {
		val := ".*"
		if v.Type == "custom" {
			val = fmt.Sprint(v.Current.Value)
		}
		text := "All" // Grafana's ${name:text} of "All", whatever its allValue
		if s, ok := set[v.Name]; ok {
			val, text = s, s
		}
		q = strings.ReplaceAll(q, "${"+v.Name+":text}", text)
		q = strings.NewReplacer("${"+v.Name+"}", val, "[["+v.Name+"]]", val).Replace(q)
		q = regexp.MustCompile(`\$`+regexp.QuoteMeta(v.Name)+`\b`).ReplaceAllLiteralString(q, val)
	}
	return strings.NewReplacer("$timeFilter", timeFilter(timeFrom, now),
		"$__interval", "1m", "$interval", "1m", "$__range_s", rangeSeconds(timeFrom)).Replace(q)
}

// expectedColumns reads the column names a query must return from its
// outermost SELECT list: the alias, else the function, else the field.
func expectedColumns(q string) []string {
	if strings.HasPrefix(q, "SHOW TAG VALUES") {
		return []string{"key", "value"}
	}
	rest := strings.TrimPrefix(q, "SELECT ")
	depth, end := 0, -1
	for i := 0; i < len(rest) && end < 0; i++ {
		switch rest[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ' ':
			if depth == 0 && strings.HasPrefix(rest[i:], " FROM ") {
				end = i
			}
		}
	}
	cols := []string{"time"}
	depth, start := 0, 0
	list := rest[:end] + ","
	for i := 0; i < len(list); i++ {
		switch list[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth > 0 {
				continue
			}
			item := strings.TrimSpace(list[start:i])
			start = i + 1
			if _, alias, ok := strings.Cut(item, ` AS "`); ok {
				cols = append(cols, strings.TrimSuffix(alias, `"`))
			} else if fn, _, ok := strings.Cut(item, "("); ok {
				cols = append(cols, fn)
			} else {
				cols = append(cols, strings.Trim(item, `"`))
			}
		}
	}
	return cols
}

func TestExpectedColumns(t *testing.T) {
	tests := []struct {
		q    string
		want []string
	}{
		{`SELECT mean("satisfied") FROM "vote" WHERE $timeFilter`, []string{"time", "mean"}},
		{`SELECT count("score") AS "votes", mean("x") AS "mean score" FROM "vote"`, []string{"time", "votes", "mean score"}},
		{`SELECT "score", "org" FROM "vote"`, []string{"time", "score", "org"}},
		{`SELECT sum("online") FROM (SELECT last("online") AS "online" FROM "presence")`, []string{"time", "sum"}},
		{`SHOW TAG VALUES FROM "vote" WITH KEY = "org"`, []string{"key", "value"}},
	}
	for _, tt := range tests {
		if got := expectedColumns(tt.q); !slices.Equal(got, tt.want) {
			t.Errorf("expectedColumns(%q) = %q, want %q", tt.q, got, tt.want)
		}
	}
}

// leftover finds a variable or macro substitute missed ($ alone ends
// regexes).
var leftover = regexp.MustCompile(`\$[A-Za-z_{]|\[\[`)

var groupTags = regexp.MustCompile(`GROUP BY ([^()]*?)(?: fill\(|$| ORDER| LIMIT)`)

// TestEveryQueryRuns runs every panel query, variable query and annotation
// of every dashboard, with All selected, against the seeded InfluxDB.
func TestEveryQueryRuns(t *testing.T) {
	env := startInflux(t)
	for _, d := range loadDashboards(t) {
		type query struct{ name, q, timeFrom string }
		var qs []query
		for _, v := range d.Templating.List {
			if q, ok := v.Query.(string); ok && v.Type == "query" {
				qs = append(qs, query{"variable " + v.Name, q, ""})
			}
		}
		for _, a := range d.Annotations.List {
			if a.BuiltIn == 0 {
				qs = append(qs, query{"annotation " + a.Name, a.Query, ""})
			}
		}
		for _, p := range d.allPanels() {
			for _, tg := range p.Targets {
				if strings.Contains(tg.Query, aggregateBranch) {
					continue // the aggregates' twin of a raw query: aggregates_test.go runs it
				}
				qs = append(qs, query{fmt.Sprintf("panel %d %q %s", p.ID, p.Title, tg.RefID), tg.Query, p.TimeFrom})
			}
		}
		for _, q := range qs {
			t.Run(d.file+"/"+q.name, func(t *testing.T) {
				stmt := substitute(d, q.q, q.timeFrom, env.now, nil)
				if leftover.MatchString(stmt) {
					t.Fatalf("unsubstituted variable left in %s", stmt)
				}
				res, err := env.srv.Query(t.Context(), stmt)
				if err != nil {
					t.Fatalf("dashboard %s, %s: %v", d.Title, q.name, err)
				}
				rows := 0
				for _, s := range res {
					rows += len(s.Values)
				}
				if rows == 0 {
					t.Fatalf("dashboard %s, %s: no rows for %s", d.Title, q.name, stmt)
				}
				for _, col := range expectedColumns(stmt) {
					if res[0].Col(col) < 0 {
						t.Errorf("dashboard %s, %s: no column %q in %q", d.Title, q.name, col, res[0].Columns)
					}
				}
				if m := groupTags.FindStringSubmatch(stmt); m != nil {
					for _, tag := range strings.Split(m[1], ",") {
						tag = strings.Trim(strings.TrimSpace(tag), `"`)
						if strings.HasPrefix(tag, "time(") {
							continue
						}
						if _, ok := res[0].Tags[tag]; !ok {
							t.Errorf("dashboard %s, %s: series not tagged %q: %v", d.Title, q.name, tag, res[0].Tags)
						}
					}
				}
			})
		}
	}
}

// TestFigures checks what managers read against values computed here from
// seedFleet, independently of InfluxDB and of the rollup package.
func TestFigures(t *testing.T) {
	env := startInflux(t)
	dash := map[string]dashboard{}
	for _, d := range loadDashboards(t) {
		dash[d.UID] = d
	}
	// run runs the first query of the panel titled title.
	run := func(t *testing.T, uid, title string, set map[string]string) []influxdb.Series {
		t.Helper()
		d := dash[uid]
		for _, p := range d.allPanels() {
			if p.Title == title {
				res, err := env.srv.Query(t.Context(), substitute(d, p.Targets[0].Query, p.TimeFrom, env.now, set))
				if err != nil {
					t.Fatalf("%s / %s: %v", d.Title, title, err)
				}
				return res
			}
		}
		t.Fatalf("dashboard %s has no panel %q", uid, title)
		return nil
	}
	type totals struct{ votes, sat, acts, voted int }
	sum := func(keep func(counterSpec) bool) (out totals) {
		for _, c := range seedFleet {
			if !keep(c) {
				continue
			}
			for _, s := range c.scores {
				out.votes++
				if s >= 4 {
					out.sat++
				}
			}
			out.acts += c.activations
			out.voted += len(c.scores)
		}
		return out
	}
	all := sum(func(counterSpec) bool { return true })
	city := sum(func(c counterSpec) bool { return c.org == "city" })

	t.Run("satisfied share and participation", func(t *testing.T) {
		tests := []struct {
			panel string
			set   map[string]string
			want  float64
		}{
			{"Satisfied, range", nil, float64(all.sat) / float64(all.votes)},
			{"Satisfied, range", map[string]string{"org": "city"}, float64(city.sat) / float64(city.votes)},
			{"Satisfied, last hour", map[string]string{"counter": "c2"}, 3.0 / 10},
			{"Participation, range", nil, float64(all.voted) / float64(all.acts)},
			{"Participation, range", map[string]string{"org": "city"}, float64(city.voted) / float64(city.acts)},
			{"Votes, range", nil, float64(all.votes)},
		}
		for _, tt := range tests {
			res := run(t, "semko-satisfaction", tt.panel, tt.set)
			if len(res) != 1 || len(res[0].Values) != 1 {
				t.Fatalf("%s %v: want one value, got %+v", tt.panel, tt.set, res)
			}
			got, err := res[0].Float(0, res[0].Columns[1])
			if err != nil || math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("%s %v = %v (%v), want %v", tt.panel, tt.set, got, err, tt.want)
			}
		}
	})

	t.Run("by counter", func(t *testing.T) {
		res := run(t, "semko-satisfaction", "By counter", nil)
		if len(res) != len(seedFleet) {
			t.Fatalf("%d counters, want %d", len(res), len(seedFleet))
		}
		for _, s := range res {
			c := sum(func(c counterSpec) bool { return c.counter == s.Tags["counter"] })
			votes, _ := s.Int(0, "votes")
			share, _ := s.Float(0, "satisfied")
			if votes != int64(c.votes) || math.Abs(share-float64(c.sat)/float64(c.votes)) > 1e-9 {
				t.Errorf("counter %s: %d votes, %.4f satisfied; want %d, %.4f", s.Tags["counter"], votes, share, c.votes, float64(c.sat)/float64(c.votes))
			}
		}
	})

	t.Run("fair ranking", func(t *testing.T) {
		prior := float64(all.sat) / float64(all.votes)
		type ranked struct {
			counter string
			shrunk  float64
		}
		var want []ranked
		for _, c := range seedFleet {
			s := sum(func(o counterSpec) bool { return o.counter == c.counter })
			want = append(want, ranked{c.counter, (float64(s.sat) + 20*prior) / (float64(s.votes) + 20)})
		}
		slices.SortFunc(want, func(a, b ranked) int { return -cmpFloat(a.shrunk, b.shrunk) })
		if want[0].counter == "tiny" {
			t.Fatal("seed is wrong: the fair ranking should not put tiny first")
		}

		res := run(t, "semko-comparison", "Fair ranking: counters", nil)
		if len(res) != len(want) {
			t.Fatalf("%d ranked counters, want %d", len(res), len(want))
		}
		for _, s := range res {
			rank, _ := s.Int(0, "rank")
			fair, _ := s.Float(0, "fair share")
			i := int(rank) - 1
			if i < 0 || i >= len(want) || want[i].counter != s.Tags["counter"] || math.Abs(fair-want[i].shrunk) > 1e-9 {
				t.Errorf("counter %s: rank %d fair share %.6f; want order %+v", s.Tags["counter"], rank, fair, want)
			}
		}
	})
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
