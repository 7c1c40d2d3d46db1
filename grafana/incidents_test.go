package grafana

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/incident"
	"github.com/semko/semko/backend/incident/sqlite"
	"github.com/semko/semko/internal/influxdb"
)

// incidentSpec is one incident of the seeded desk: when it was registered
// (minutes after the seed's start), after how many minutes it was passed
// on and closed (0: not yet), the reason given for a late close, and how
// many registrations were refused before it (no comment, no remark).
type incidentSpec struct {
	org, site, dept string
	channel         incident.Channel
	typ             incident.Type
	at, pass, close int // minutes
	reason          string
	refused         int
}

// seedIncidents is the known population the Customer Service figures are
// checked against. The desk runs them on a fake clock from 20 hours ago,
// on an always-open calendar: retail and services have 3 hours, the call
// centre's calls 15 minutes.
var seedIncidents = []incidentSpec{
	{"shop", "mall", "retail", incident.ChannelInPerson, incident.TypeService, 0, 30, 120, "", 1},
	{"shop", "mall", "retail", incident.ChannelPhone, incident.TypePromotion, 60, 240, 300, "", 0},
	{"shop", "centre", "services", incident.ChannelEmail, incident.TypeConsultation, 120, 20, 380, "waiting_for_supplier", 0},
	{"shop", "centre", "services", incident.ChannelWebForm, incident.TypeThanks, 200, 10, 30, "", 0},
	{"bank", "west", "call_centre_call", incident.ChannelPhone, incident.TypeService, 300, 5, 60, "staff_absent", 2},
	{"bank", "west", "retail", incident.ChannelKeypadNegative, incident.TypeService, 400, 0, 0, "", 0},
	{"bank", "west", "retail", incident.ChannelNPSDetractor, incident.TypeCertificate, 500, 60, 0, "", 0},
	{"shop", "mall", "retail", incident.ChannelInPerson, incident.TypeThanks, 600, 5, 10, "", 0},
	{"shop", "mall", "other", incident.ChannelEmail, incident.TypeQuality, 700, 0, 0, "", 0},
	{"shop", "mall", "retail", incident.ChannelWebForm, incident.TypeService, 720, 100, 170, "", 0},
}

// maxMinutes is each department's maximum time in the default table.
func maxMinutes(dept string) int {
	if dept == "call_centre_call" {
		return 15
	}
	return 180
}

const seedSpan = 20 * time.Hour

// remarkNeeded mirrors the desk's rule, for the recomputation.
func remarkNeeded(s incidentSpec) bool {
	return s.typ != incident.TypeThanks && (s.channel == incident.ChannelInPerson || s.channel == incident.ChannelPhone || s.channel == incident.ChannelWebForm)
}

// lineCollector is the desk's spool: it keeps the lines in order.
type lineCollector struct {
	mu    sync.Mutex
	lines []string
}

func (c *lineCollector) Append(_ context.Context, recs ...[]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range recs {
		c.lines = append(c.lines, string(r))
	}
	return nil
}

// incidentSeedLines runs seedIncidents through a real desk (SQLite in a
// temporary directory, a fake clock) and returns the `incident` points it
// wrote, ending at now. It panics on errors: the seed is fixed, and a
// failure is a bug the tests must show loudly.
func incidentSeedLines(now time.Time) []string {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "semko-incident-seed-")
	must(err)
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(ctx, filepath.Join(dir, "incidents.db"))
	must(err)
	defer store.Close()
	files, err := incident.NewFiles(filepath.Join(dir, "files"), 1<<20)
	must(err)
	start := now.Add(-seedSpan).Truncate(time.Minute)
	clock := clockwork.NewFakeClockAt(start)
	out := &lineCollector{}
	desk, err := incident.New(incident.Options{Store: store, Files: files, Clock: clock, Spool: out})
	must(err)
	cs := access.Principal{Account: "olga", Role: access.CustomerService, Scope: access.Everything}

	type event struct {
		at int
		do func()
	}
	var events []event
	ids := make([]int64, len(seedIncidents))
	for i, s := range seedIncidents {
		events = append(events, event{s.at, func() {
			d := incident.Draft{Org: s.org, Site: s.site, Department: s.dept, Channel: s.channel, Type: s.typ}
			for range s.refused {
				if _, err := desk.Register(ctx, cs, d); err == nil {
					panic("a registration without comment was accepted")
				}
			}
			d.Description, d.RemarkNo = fmt.Sprintf("seeded incident %d", i), "R-1"
			in, err := desk.Register(ctx, cs, d)
			must(err)
			ids[i] = in.ID
		}})
		if s.pass > 0 {
			events = append(events, event{s.at + s.pass, func() {
				_, err := desk.PassOn(ctx, cs, ids[i], "maria", "please handle")
				must(err)
			}})
		}
		if s.close > 0 {
			events = append(events, event{s.at + s.close, func() {
				_, err := desk.Close(ctx, cs, ids[i], "The customer came, the goods were exchanged", true, s.reason)
				must(err)
			}})
		}
	}
	sort.SliceStable(events, func(a, b int) bool { return events[a].at < events[b].at })
	for _, e := range events {
		clock.Advance(start.Add(time.Duration(e.at) * time.Minute).Sub(clock.Now()))
		_, err := desk.CheckDeadlines(ctx) // the ticker would have run by now
		must(err)
		e.do()
	}
	clock.Advance(now.Sub(clock.Now()))
	_, err = desk.CheckDeadlines(ctx)
	must(err)
	return out.lines
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// expected are the figures recomputed from seedIncidents alone.
type expected struct {
	incidents, thanks   int
	byChannel, byType   map[string]int
	reasons             map[string]int
	closed, within      map[string]int // by department
	closeMin            map[string][]int
	passMin             map[string][]int
	late                map[string]int
	errors              map[string]map[string]int // department -> error -> count
	categoryService     int
	totalLate, totalErr int
}

func recompute() expected {
	e := expected{byChannel: map[string]int{}, byType: map[string]int{}, reasons: map[string]int{}, closed: map[string]int{},
		within: map[string]int{}, closeMin: map[string][]int{}, passMin: map[string][]int{}, late: map[string]int{}, errors: map[string]map[string]int{}}
	end := int(seedSpan / time.Minute)
	for _, s := range seedIncidents {
		if s.typ == incident.TypeThanks {
			e.thanks++
		} else {
			e.incidents++
			e.byType[string(s.typ)]++
		}
		if s.typ == incident.TypeService {
			e.categoryService++
		}
		e.byChannel[string(s.channel)]++
		max := maxMinutes(s.dept)
		if s.pass > 0 {
			e.passMin[s.dept] = append(e.passMin[s.dept], s.pass)
		}
		// A missed pass-on deadline, then a missed closing deadline
		// (counted from the pass-on).
		if (s.pass == 0 && end-s.at > max) || s.pass > max {
			e.late[s.dept]++
		}
		if s.pass > 0 && ((s.close == 0 && end-s.at-s.pass > max) || (s.close > 0 && s.close-s.pass > max)) {
			e.late[s.dept]++
		}
		if s.close > 0 {
			e.closed[s.dept]++
			e.closeMin[s.dept] = append(e.closeMin[s.dept], s.close)
			if s.close-s.pass <= max {
				e.within[s.dept]++
			} else {
				e.reasons[s.reason]++
			}
		}
		if s.refused > 0 {
			if e.errors[s.dept] == nil {
				e.errors[s.dept] = map[string]int{}
			}
			e.errors[s.dept]["comment"] += s.refused
			e.totalErr += s.refused
			if remarkNeeded(s) {
				e.errors[s.dept]["remark"] += s.refused
				e.totalErr += s.refused
			}
		}
	}
	for _, n := range e.late {
		e.totalLate += n
	}
	return e
}

func mean(xs []int) float64 {
	s := 0
	for _, x := range xs {
		s += x
	}
	return float64(s) / float64(len(xs))
}

// TestCustomerServiceFigures runs every panel of the Customer Service
// dashboard against a real InfluxDB holding the desk's own points for
// seedIncidents, and compares each figure with recompute().
func TestCustomerServiceFigures(t *testing.T) {
	env := startInflux(t)
	var d dashboard
	for _, x := range loadDashboards(t) {
		if x.UID == "semko-customer-service" {
			d = x
		}
	}
	if d.UID == "" {
		t.Fatal("no Customer Service dashboard")
	}
	e := recompute()
	if len(e.reasons) == 0 || e.totalLate == 0 || e.totalErr == 0 || e.thanks == 0 {
		t.Fatalf("the seed does not exercise every figure: %+v", e)
	}
	query := func(t *testing.T, p panel, ref int, set map[string]string) []influxdb.Series {
		t.Helper()
		res, err := env.srv.Query(t.Context(), substitute(d, p.Targets[ref].Query, p.TimeFrom, env.now, set))
		if err != nil {
			t.Fatalf("%s: %v", p.Title, err)
		}
		return res
	}
	// total sums a column over every series and row (bins of a month,
	// series by tag).
	total := func(res []influxdb.Series, col string) float64 {
		s := 0.0
		for _, se := range res {
			for i := range se.Values {
				if v, err := se.Float(i, col); err == nil {
					s += v
				}
			}
		}
		return s
	}
	byTag := func(res []influxdb.Series, tag, col string) map[string]float64 {
		out := map[string]float64{}
		for _, se := range res {
			for i := range se.Values {
				if v, err := se.Float(i, col); err == nil {
					out[se.Tags[tag]] += v
				}
			}
		}
		return out
	}
	near := func(t *testing.T, what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-6 {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	eqMap := func(t *testing.T, what string, got map[string]float64, want map[string]int) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: got %v, want %v", what, got, want)
		}
		for k, w := range want {
			near(t, what+" "+k, got[k], float64(w))
		}
	}
	all := e.incidents + e.thanks
	checks := map[string]func(t *testing.T, p panel){
		"Incidents, range": func(t *testing.T, p panel) {
			near(t, "incidents", total(query(t, p, 0, nil), "incidents"), float64(e.incidents))
		},
		"Thanks, range": func(t *testing.T, p panel) {
			near(t, "thanks", total(query(t, p, 0, nil), "thanks"), float64(e.thanks))
		},
		"Share of thanks": func(t *testing.T, p panel) {
			near(t, "share", total(query(t, p, 0, nil), "share of thanks"), float64(e.thanks)/float64(all))
		},
		"Closed within the deadline": func(t *testing.T, p panel) {
			closed, within := 0, 0
			for k := range e.closed {
				closed += e.closed[k]
				within += e.within[k]
			}
			near(t, "within", total(query(t, p, 0, nil), "within deadline"), float64(within)/float64(closed))
		},
		"Late reactions": func(t *testing.T, p panel) { near(t, "late", total(query(t, p, 0, nil), "late"), float64(e.totalLate)) },
		"Interaction errors": func(t *testing.T, p panel) {
			near(t, "errors", total(query(t, p, 0, nil), "errors"), float64(e.totalErr))
		},
		"Incidents and thanks by month": func(t *testing.T, p panel) {
			near(t, "incidents by month", total(query(t, p, 0, nil), "incidents"), float64(e.incidents))
			near(t, "thanks by month", total(query(t, p, 1, nil), "thanks"), float64(e.thanks))
			// One organisation only.
			shop := 0
			for _, s := range seedIncidents {
				if s.org == "shop" && s.typ != incident.TypeThanks {
					shop++
				}
			}
			near(t, "shop's incidents by month", total(query(t, p, 0, map[string]string{"org": "shop"}), "incidents"), float64(shop))
		},
		"Channels": func(t *testing.T, p panel) {
			eqMap(t, "channels", byTag(query(t, p, 0, nil), "channel", "requests"), e.byChannel)
		},
		"Incidents by category": func(t *testing.T, p panel) {
			eqMap(t, "categories", byTag(query(t, p, 0, nil), "type", "incidents"), e.byType)
		},
		"Incidents of the chosen category": func(t *testing.T, p panel) {
			near(t, "poor_service", total(query(t, p, 0, map[string]string{"type": "poor_service"}), "incidents"), float64(e.categoryService))
		},
		"Reasons for long service": func(t *testing.T, p panel) {
			eqMap(t, "reasons", byTag(query(t, p, 0, nil), "reason", "incidents"), e.reasons)
		},
		"Deadlines by department": func(t *testing.T, p panel) {
			res := query(t, p, 0, nil)
			eqMap(t, "closed", byTag(res, "department", "closed"), e.closed)
			for dept, n := range e.closed {
				near(t, dept+" within", byTag(res, "department", "within deadline")[dept], float64(e.within[dept])/float64(n))
				near(t, dept+" minutes to close", byTag(res, "department", "minutes to close")[dept], mean(e.closeMin[dept]))
			}
		},
		"Passing on by department": func(t *testing.T, p panel) {
			res := query(t, p, 0, nil)
			for dept, ms := range e.passMin {
				near(t, dept+" passed on", byTag(res, "department", "passed on")[dept], float64(len(ms)))
				near(t, dept+" minutes to pass on", byTag(res, "department", "minutes to pass on")[dept], mean(ms))
				near(t, dept+" slowest", byTag(res, "department", "slowest")[dept], float64(slices.Max(ms)))
			}
		},
		"Interaction errors by department": func(t *testing.T, p panel) {
			res := query(t, p, 0, nil)
			cols := map[string]string{"comment": "no comment", "remark": "no remark number"}
			for dept, errs := range e.errors {
				total := 0
				for code, n := range errs {
					near(t, dept+" "+code, byTag(res, "department", cols[code])[dept], float64(n))
					total += n
				}
				near(t, dept+" total", byTag(res, "department", "total")[dept], float64(total))
				near(t, dept+" blurred scans", byTag(res, "department", "blurred scan")[dept], 0)
			}
			if len(res) != len(e.errors) {
				t.Errorf("%d departments with errors, want %d", len(res), len(e.errors))
			}
		},
		"Late reactions by department": func(t *testing.T, p panel) {
			eqMap(t, "late", byTag(query(t, p, 0, nil), "department", "late reactions"), e.late)
		},
	}
	for _, p := range d.allPanels() {
		check, ok := checks[p.Title]
		if !ok {
			t.Errorf("panel %q has no figure check", p.Title)
			continue
		}
		t.Run(strings.ReplaceAll(p.Title, " ", "_"), func(t *testing.T) { check(t, p) })
	}
}
