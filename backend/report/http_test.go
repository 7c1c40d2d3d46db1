package report

import (
	"bytes"
	"encoding/csv"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/xuri/excelize/v2"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/alert"
)

func TestHandlerScopeFormatsAndBadInput(t *testing.T) {
	fx := seedFixture(t)
	now := weekStart.AddDate(0, 0, 9)
	rejected := NewRejectedCounter()
	h := &Handler{
		Builder:  &Builder{DB: fx.db, Alerts: alert.NewMemStore(), Now: func() time.Time { return now }},
		Zone:     func(string, string) *time.Location { return sofia },
		Rejected: rejected,
	}
	bank := &access.Principal{Account: "maria", Role: access.Manager, Scope: access.Scope{Orgs: []string{"bank"}}, Lang: "bg"}
	northOnly := &access.Principal{Account: "ivan", Role: access.Viewer, Scope: access.Scope{Sites: []string{"b-north"}}}
	get := func(p *access.Principal, query string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/reports?"+query, nil)
		if p != nil {
			r = r.WithContext(access.WithPrincipal(r.Context(), *p))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	week := "period=week&date=2026-11-25"
	cases := []struct {
		name   string
		p      *access.Principal
		query  string
		status int
		body   string // in the error, when not 200
	}{
		{"own org as pdf", bank, "org=bank&" + week, 200, ""},
		{"other org", bank, "org=post&" + week, 404, "no such scope"},
		{"other org's site under own org", bank, "org=post&site=b-north&" + week, 404, "no such scope"},
		{"site grant, whole org asked", northOnly, "org=bank&" + week, 404, "no such scope"},
		{"site grant, own site", northOnly, "org=bank&site=b-north&" + week, 200, ""},
		{"no org for a scoped caller", bank, week, 400, "org is required"},
		{"bootstrap token sees everything", nil, "org=post&" + week, 200, ""},
		{"bootstrap, all orgs", nil, week, 200, ""},
		{"unknown language", bank, "org=bank&lang=tlh&" + week, 400, "unknown language"},
		{"unknown format", bank, "org=bank&format=docx&" + week, 400, "unknown format"},
		{"ten years", bank, "org=bank&period=custom&from=2016-01-01&to=2025-12-31", 400, "longer than a report covers"},
		{"empty period", bank, "org=bank&period=custom&from=2026-11-25&to=2026-11-20", 400, "before it starts"},
		{"bad date", bank, "org=bank&period=month&date=yesterday", 400, "must be a date"},
		{"unknown period", bank, "org=bank&period=fortnight", 400, "invalid period"},
		{"scope with no data", bank, "org=bank&site=b-west&" + week, 200, ""},
		{"control characters", bank, "org=bank&site=a%0Ab&" + week, 400, "not a name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := get(c.p, c.query)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if c.status != 200 {
				if !strings.Contains(w.Body.String(), c.body) {
					t.Errorf("body %s lacks %q", w.Body, c.body)
				}
				return
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/pdf" || !bytes.HasPrefix(w.Body.Bytes(), []byte("%PDF-")) {
				t.Errorf("content type %q, body %.10q: not a PDF", ct, w.Body.Bytes())
			}
		})
	}
	if n := testutil.ToFloat64(rejected.WithLabelValues("not_found")); n != 3 {
		t.Errorf("%v not_found rejections counted, want 3", n)
	}

	// The CSV and XLSX carry the same figures as the report, and nothing
	// of the other organisation.
	want := fx.expect(weekStart, weekStart.AddDate(0, 0, 7), func(org, _, _ string) bool { return org == "bank" })
	w := get(bank, "org=bank&format=csv&lang=en&"+week)
	if w.Code != 200 {
		t.Fatalf("csv: %d %s", w.Code, w.Body)
	}
	recs, err := csvRecords(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := lookup(recs, "Votes"); got != strconv.FormatInt(want.Votes, 10) {
		t.Errorf("csv Votes %q, want %d", got, want.Votes)
	}
	if got := lookup(recs, "Satisfied"); got != strconv.FormatInt(want.Satisfied, 10) {
		t.Errorf("csv Satisfied %q, want %d", got, want.Satisfied)
	}
	if strings.Contains(w.Body.String(), "p-one") || strings.Contains(w.Body.String(), "op-petar") {
		t.Errorf("csv carries the other organisation:\n%s", w.Body)
	}
	if cd := w.Header().Get("Content-Disposition"); cd != `attachment; filename="semko-bank-week-2026-11-23.csv"` {
		t.Errorf("Content-Disposition %q", cd)
	}

	w = get(bank, "org=bank&format=xlsx&"+week) // the account's language: bg
	if w.Code != 200 {
		t.Fatalf("xlsx: %d %s", w.Code, w.Body)
	}
	x, err := excelize.OpenReader(bytes.NewReader(w.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if sheets := x.GetSheetList(); len(sheets) != 5 || sheets[0] != "Обобщение" || sheets[1] != "Обекти" {
		t.Fatalf("sheets %q", sheets)
	}
	rows, err := x.GetRows("Обекти")
	if err != nil {
		t.Fatal(err)
	}
	var votes int64
	for _, r := range rows[1:] {
		if r[1] != "bank" {
			t.Errorf("xlsx site row of %q", r[1])
		}
		n, err := strconv.ParseInt(r[3], 10, 64)
		if err != nil {
			t.Fatalf("votes cell %q: %v", r[3], err)
		}
		votes += n
	}
	if votes != want.Votes {
		t.Errorf("xlsx sites sum to %d votes, want %d", votes, want.Votes)
	}
}

func csvRecords(r io.Reader) ([][]string, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	return cr.ReadAll()
}

// lookup returns the value of the first two-column record named key.
func lookup(recs [][]string, key string) string {
	for _, r := range recs {
		if len(r) == 2 && r[0] == key {
			return r[1]
		}
	}
	return ""
}

func TestPeriods(t *testing.T) {
	day := time.Date(2026, 12, 5, 15, 0, 0, 0, sofia) // a Saturday
	cases := []struct {
		kind       Kind
		start, end string
		prevStart  string
	}{
		{Week, "2026-11-30", "2026-12-07", "2026-11-23"},
		{Month, "2026-12-01", "2027-01-01", "2026-11-01"},
		{Quarter, "2026-10-01", "2027-01-01", "2026-07-01"},
		{Today, "2026-12-05", "2026-12-06", "2026-12-04"},
	}
	for _, c := range cases {
		p, err := NewPeriod(c.kind, day, sofia)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Start.Format(time.DateOnly) + " " + p.End.Format(time.DateOnly) + " " + p.Previous().Start.Format(time.DateOnly); got != c.start+" "+c.end+" "+c.prevStart {
			t.Errorf("%s: %s, want %s %s %s", c.kind, got, c.start, c.end, c.prevStart)
		}
	}
	// A week across the change to summer time is still Monday to Monday.
	p, _ := NewPeriod(Week, time.Date(2026, 3, 29, 12, 0, 0, 0, sofia), sofia)
	if p.Start.Weekday() != time.Monday || p.End.Sub(p.Start) != 7*24*time.Hour-time.Hour {
		t.Errorf("DST week %v .. %v", p.Start, p.End)
	}
	c, err := CustomPeriod(time.Date(2026, 1, 1, 0, 0, 0, 0, sofia), time.Date(2026, 12, 31, 0, 0, 0, 0, sofia), sofia)
	if err != nil || len(c.Days()) != 365 {
		t.Errorf("a whole year: %v, %d days", err, len(c.Days()))
	}
}

func TestLocalisedNumbersAndDates(t *testing.T) {
	d := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct{ lang, num, pct, date, month string }{
		{"en", "1,234,567", "84.3%", "5 December 2026", "December 2026"},
		{"bg", "1\u00a0234\u00a0567", "84,3\u00a0%", "5 декември 2026 г.", "Декември 2026"},
		{"ru", "1\u00a0234\u00a0567", "84,3\u00a0%", "5 декабря 2026 г.", "Декабрь 2026"},
	} {
		l := loc{c.lang}
		p, _ := NewPeriod(Month, d, time.UTC)
		if got := []string{l.num(1234567), l.pct(0.8434), l.date(d), l.period(p)}; got[0] != c.num || got[1] != c.pct || got[2] != c.date || got[3] != c.month {
			t.Errorf("%s: %q", c.lang, got)
		}
	}
	for key, m := range words {
		for _, lang := range Langs {
			if m[lang] == "" {
				t.Errorf("%q has no %s text", key, lang)
			}
		}
	}
}
