package aggregate

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/internal/influxdb"
	"github.com/semko/semko/internal/influxlocal"
)

// rawVote is one vote the test wrote.
type rawVote struct {
	tags     [7]string // VoteTags order
	score    int
	valid    bool
	serviceS int
	at       time.Time
}

type rawAct struct {
	tags          [5]string // ActivationTags order
	closed, voted bool
	serviceS      int
	at            time.Time
}

type world struct {
	srv   *influxlocal.Server
	db    *influxdb.Client
	rng   *rand.Rand
	votes []rawVote
	acts  []rawAct
}

var t0 = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

func newWorld(t *testing.T) *world {
	srv := influxlocal.StartForTest(t)
	db, err := influxdb.New(influxdb.Options{URL: srv.URL(), Bucket: srv.Database()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return &world{srv: srv, db: db, rng: rand.New(rand.NewPCG(1, 13))}
}

// press writes n votes and activations at random times in [from, to).
func (w *world) press(t *testing.T, n int, from, to time.Time) {
	t.Helper()
	var lines []string
	for range n {
		at := from.Add(time.Duration(w.rng.Int64N(int64(to.Sub(from)))))
		org := []string{"bank", "post"}[w.rng.IntN(2)]
		site := fmt.Sprintf("%s-s%d", org, w.rng.IntN(2))
		counter := fmt.Sprintf("%s-c%d", site, w.rng.IntN(2))
		op := fmt.Sprintf("op-%d", w.rng.IntN(3))
		svc := []string{"passport", "cash"}[w.rng.IntN(2)]
		ch := []string{"keypad", "keypad", "web"}[w.rng.IntN(3)]
		scale, score := "csat5", 1+w.rng.IntN(5)
		if w.rng.IntN(8) == 0 {
			scale, score = "nps11", w.rng.IntN(11)
		}
		v := rawVote{tags: [7]string{org, site, counter, op, svc, ch, scale}, score: score, valid: w.rng.IntN(9) != 0,
			serviceS: 30 + w.rng.IntN(900), at: at}
		w.votes = append(w.votes, v)
		sat, neg := score >= 4, score <= 2
		if scale == "nps11" {
			sat, neg = score >= 9, score <= 6
		}
		tags := fmt.Sprintf("vote,channel=%s,counter=%s,device=kp-%s,operator=%s,org=%s,scale=%s,service=%s,site=%s",
			ch, counter, counter, op, org, scale, svc, site)
		fields := fmt.Sprintf("score=%di,satisfied=%di,negative=%di,service_s=%di", score, b2i(sat), b2i(neg), v.serviceS)
		if w.rng.IntN(2) == 0 { // the old shape: valid as a tag
			tags += fmt.Sprintf(",valid=%t", v.valid)
		} else {
			fields += fmt.Sprintf(`,valid="%t"`, v.valid)
		}
		lines = append(lines, fmt.Sprintf("%s %s %d", tags, fields, at.UnixNano()))
		a := rawAct{tags: [5]string{org, site, counter, op, svc}, closed: w.rng.IntN(6) != 0, serviceS: 60 + w.rng.IntN(600),
			at: at.Add(-time.Duration(1+w.rng.IntN(50)) * time.Second)}
		a.voted = a.closed && w.rng.IntN(4) != 0
		w.acts = append(w.acts, a)
		af := fmt.Sprintf("service_s=%di,window_s=30i", a.serviceS)
		if a.closed {
			af += fmt.Sprintf(",voted=%di,closed=1i", b2i(a.voted))
		}
		lines = append(lines, fmt.Sprintf("activation,channel=keypad,counter=%s,device=kp-%s,operator=%s,org=%s,service=%s,site=%s,valid=true %s %d",
			counter, counter, op, org, svc, site, af, a.at.UnixNano()))
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, w.srv.URL()+"/write?db="+w.srv.Database(),
		strings.NewReader(strings.Join(lines, "\n")))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("write: %s", resp.Status)
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// points is aggregates keyed by "time|tag values".
type points map[string]map[string]int64

// expected recomputes the aggregates of tier over [from, to) at
// resolution res from the raw points the test wrote.
func (w *world) expected(tier Tier, res time.Duration, from, to time.Time) (votes, acts points) {
	keep := func(names, values []string, kept []string) string {
		var out []string
		for _, k := range kept {
			out = append(out, values[slices.Index(names, k)])
		}
		return strings.Join(out, "/")
	}
	votes, acts = points{}, points{}
	add := func(p points, k string, fields []string, kv map[string]int64) {
		if p[k] == nil {
			p[k] = map[string]int64{}
			for _, f := range fields {
				p[k][f] = 0
			}
		}
		for f, v := range kv {
			p[k][f] += v
		}
	}
	for _, v := range w.votes {
		if !v.valid || v.at.Before(from) || !v.at.Before(to) {
			continue
		}
		k := v.at.Truncate(res).Format(time.RFC3339) + "|" + keep(VoteTags, v.tags[:], tier.VoteTags)
		kv := map[string]int64{"votes": 1, "score_sum": int64(v.score), "service_s_sum": int64(v.serviceS), "service_n": 1}
		if v.tags[6] == "nps11" {
			kv["satisfied"], kv["negative"] = b2i(v.score >= 9), b2i(v.score <= 6)
		} else {
			kv["satisfied"], kv["negative"] = b2i(v.score >= 4), b2i(v.score <= 2)
			kv[fmt.Sprintf("score_%d", v.score)] = 1
		}
		add(votes, k, voteFields, kv)
	}
	for _, a := range w.acts {
		if a.at.Before(from) || !a.at.Before(to) {
			continue
		}
		k := a.at.Truncate(res).Format(time.RFC3339) + "|" + keep(ActivationTags, a.tags[:], tier.ActivationTags)
		add(acts, k, activationFields, map[string]int64{"opened": 1, "activations": b2i(a.closed), "voted": b2i(a.voted),
			"service_s_sum": int64(a.serviceS)})
	}
	return votes, acts
}

// stored reads an aggregate measurement back over [from, to).
func (w *world) stored(t *testing.T, m string, tags []string, from, to time.Time) points {
	t.Helper()
	res, err := w.db.Query(t.Context(), fmt.Sprintf(`SELECT * FROM "%s" WHERE time >= %s AND time < %s GROUP BY *`, m, ts(from), ts(to)))
	if err != nil {
		t.Fatal(err)
	}
	out := points{}
	for _, s := range res {
		var tv []string
		for _, tg := range tags {
			tv = append(tv, s.Tags[tg])
		}
		for row := range s.Values {
			at, err := s.Time(row)
			if err != nil {
				t.Fatal(err)
			}
			k := at.UTC().Format(time.RFC3339) + "|" + strings.Join(tv, "/")
			out[k] = map[string]int64{}
			for _, c := range s.Columns[1:] {
				if v, ok := s.Number(row, c); ok {
					out[k][c] = int64(v)
				}
			}
		}
	}
	return out
}

func (w *world) check(t *testing.T, from, to time.Time) {
	t.Helper()
	for _, tier := range Tiers {
		for _, daily := range []bool{false, true} {
			if !daily && !tier.Hourly {
				if got := w.stored(t, tier.Vote(false), tier.VoteTags, from, to); len(got) != 0 {
					t.Errorf("%s: %d points of a grain the tier does not have", tier.Vote(false), len(got))
				}
				continue
			}
			res := time.Hour
			if daily {
				res = 24 * time.Hour
			}
			wantV, wantA := w.expected(tier, res, from, to)
			gotV, gotA := w.stored(t, tier.Vote(daily), tier.VoteTags, from, to), w.stored(t, tier.Activation(daily), tier.ActivationTags, from, to)
			diff(t, tier.Vote(daily), gotV, wantV)
			diff(t, tier.Activation(daily), gotA, wantA)
		}
	}
	want, got := w.expectedReport(from, to), w.storedReport(t, from, to)
	if len(want) == 0 {
		t.Fatalf("%s: the test expects nothing: too few votes", ReportDaily)
	}
	bad := 0
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if !reflect.DeepEqual(got[k], want[k]) && bad < 5 {
			g, _ := json.Marshal(got[k])
			e, _ := json.Marshal(want[k])
			t.Errorf("%s %s\n got %s\nwant %s", ReportDaily, k, g, e)
			bad++
		}
	}
	for k := range got {
		if want[k] == nil && bad < 5 {
			t.Errorf("%s %s: not expected", ReportDaily, k)
			bad++
		}
	}
}

// expectedReport recomputes the report tier over [from, to) from the raw
// points the test wrote, keyed by "day|org/site".
func (w *world) expectedReport(from, to time.Time) map[string]*ReportDay {
	out := map[string]*ReportDay{}
	at := func(org, site, op string, t time.Time) (*ReportDay, *[7]int64, *[6]int64) {
		k := t.Truncate(24*time.Hour).Format(time.RFC3339) + "|" + org + "/" + site
		if out[k] == nil {
			out[k] = &ReportDay{Ops: map[string]*[7]int64{}, Hours: map[int]*[6]int64{}}
		}
		o, h := out[k].at(op, t.Hour())
		return out[k], o, h
	}
	for _, v := range w.votes {
		if !v.valid || v.tags[6] == "nps11" || v.at.Before(from) || !v.at.Before(to) {
			continue
		}
		d, o, h := at(v.tags[0], v.tags[1], v.tags[3], v.at.UTC())
		for i, x := range []int64{1, int64(v.score), b2i(v.score >= 4), b2i(v.score <= 2)} {
			o[i] += x
			h[i] += x
		}
		o[4] += int64(v.serviceS)
		d.Scores[v.score-1]++
	}
	for _, a := range w.acts {
		if a.at.Before(from) || !a.at.Before(to) {
			continue
		}
		_, o, h := at(a.tags[0], a.tags[1], a.tags[3], a.at.UTC())
		o[5] += b2i(a.closed)
		o[6] += b2i(a.voted)
		h[4] += b2i(a.closed)
		h[5] += b2i(a.voted)
	}
	return out
}

// storedReport reads the report tier back over [from, to).
func (w *world) storedReport(t *testing.T, from, to time.Time) map[string]*ReportDay {
	t.Helper()
	res, err := w.db.Query(t.Context(), fmt.Sprintf(`SELECT %q FROM %q WHERE time >= %s AND time < %s GROUP BY "org", "site"`,
		ReportField, ReportDaily, ts(from), ts(to)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*ReportDay{}
	for _, s := range res {
		for row := range s.Values {
			at, err := s.Time(row)
			if err != nil {
				t.Fatal(err)
			}
			str, _ := s.Values[row][s.Col(ReportField)].(string)
			var d ReportDay
			if err := json.Unmarshal([]byte(str), &d); err != nil {
				t.Fatalf("%s %v: %v", ReportDaily, at, err)
			}
			out[at.UTC().Format(time.RFC3339)+"|"+s.Tags["org"]+"/"+s.Tags["site"]] = &d
		}
	}
	return out
}

func diff(t *testing.T, name string, got, want points) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: the test expects nothing: too few votes", name)
	}
	bad := 0
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if !maps.Equal(got[k], want[k]) && bad < 5 {
			t.Errorf("%s %s\n got %v\nwant %v", name, k, got[k], want[k])
			bad++
		}
	}
	for k := range got {
		if want[k] == nil && bad < 5 {
			t.Errorf("%s %s: not expected: %v", name, k, got[k])
			bad++
		}
	}
}

func TestAggregatesEqualRawLateVotesAndCatchUp(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "aggregate.json")
	now := t0.Add(3*24*time.Hour + 6*time.Hour + 30*time.Minute) // 23 Nov 06:30
	clock := clockwork.NewFakeClockAt(now)
	newJob := func() *Job {
		j, err := New(Options{URL: w.srv.URL(), Bucket: w.srv.Database(), StateFile: state, Clock: clock,
			MaxAge: 5 * 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = j.Close() })
		return j
	}
	j := newJob()
	if err := j.RunOnce(ctx); err != nil { // nothing yet: no error, no mark
		t.Fatal(err)
	}
	w.press(t, 1500, t0, now)
	if err := j.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	w.check(t, t0, now.Add(time.Hour))

	// Idempotent: the same run again changes nothing.
	before := w.stored(t, Site.Vote(false), Site.VoteTags, t0, now.Add(time.Hour))
	if err := j.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	after := w.stored(t, Site.Vote(false), Site.VoteTags, t0, now.Add(time.Hour))
	if !maps.EqualFunc(before, after, maps.Equal) {
		t.Errorf("a second run changed the aggregates")
	}

	// Late votes two days back (an edge offline), and votes of the last
	// minutes: the refold folds them in.
	w.press(t, 40, t0.Add(24*time.Hour), t0.Add(26*time.Hour))
	clock.Advance(DefaultRefold)
	now = clock.Now()
	w.press(t, 30, now.Add(-20*time.Minute), now)
	if err := j.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	w.check(t, t0, now.Add(time.Hour))

	// Down for two days: a new job (a restart) catches up from its mark.
	clock.Advance(48 * time.Hour)
	down := now
	now = clock.Now()
	w.press(t, 800, down, now)
	j2 := newJob()
	if err := j2.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	w.check(t, t0, now.Add(time.Hour))
	st, err := j2.load()
	if err != nil || !st.Done.Equal(now.Truncate(time.Hour).Add(time.Hour)) || !j2.Done().Equal(st.Done) {
		t.Errorf("mark %v (%v), Done %v, want the end of the current hour", st.Done, err, j2.Done())
	}
}

// A mark written before the tiers existed (layout 0), or before the
// report tier (1), starts a backfill: the new measurements have no
// history behind it.
func TestOldLayoutBackfills(t *testing.T) {
	w := newWorld(t)
	now := t0.Add(3*24*time.Hour + 6*time.Hour)
	w.press(t, 300, t0, now)
	for _, layout := range []int{0, 1} {
		t.Run(fmt.Sprint("layout ", layout), func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "aggregate.json")
			old := fmt.Sprintf(`{"layout":%d,"done":%q,"refolded":%q}`, layout, now.Truncate(time.Hour).Format(time.RFC3339), now.Format(time.RFC3339))
			if err := os.WriteFile(state, []byte(old), 0o600); err != nil {
				t.Fatal(err)
			}
			// What the older job wrote is gone; the new one writes it all.
			if _, err := w.db.Query(t.Context(), `DROP SERIES FROM /_1[hd]$/`); err != nil {
				t.Fatal(err)
			}
			j, err := New(Options{URL: w.srv.URL(), Bucket: w.srv.Database(), StateFile: state, Clock: clockwork.NewFakeClockAt(now)})
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			if err := j.RunOnce(t.Context()); err != nil {
				t.Fatal(err)
			}
			w.check(t, t0, now.Add(time.Hour))
		})
	}
}

func TestOptions(t *testing.T) {
	if _, err := New(Options{URL: "http://127.0.0.1:1", Bucket: "semko"}); err == nil {
		t.Error("no state file accepted")
	}
	if _, err := New(Options{URL: "http://127.0.0.1:1", Bucket: "semko", StateFile: "x", Settle: -time.Hour}); err == nil {
		t.Error("negative settle accepted")
	}
}
