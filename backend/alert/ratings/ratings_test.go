package ratings

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/protocol"
)

// recorder is a Raiser that keeps what it was told.
type recorder struct {
	raised   []alert.Finding
	resolved []alert.Kind
}

func (r *recorder) Raise(_ context.Context, f alert.Finding) error {
	r.raised = append(r.raised, f)
	return nil
}

func (r *recorder) Resolve(_ context.Context, k alert.Kind, _ alert.Subject, _ string) error {
	r.resolved = append(r.resolved, k)
	return nil
}

func (r *recorder) kinds() map[alert.Kind]int {
	out := map[alert.Kind]int{}
	for _, f := range r.raised {
		out[f.Kind]++
	}
	return out
}

func fleet(t *testing.T) *registry.Registry {
	t.Helper()
	reg, err := registry.Load("../../../deploy/fleet.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func votes(scores ...int) []protocol.Vote {
	var out []protocol.Vote
	for i, s := range scores {
		out = append(out, protocol.Vote{V: 1, Device: "kp-0001", Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * time.Minute),
			Score: s, Scale: protocol.ScaleCSAT5, Channel: "keypad", Valid: true, Operator: "op-sofia-01", ServiceS: 432})
	}
	return out
}

func TestWatch(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		votes    []protocol.Vote
		want     map[alert.Kind]int
		resolved int
	}{
		{name: "one negative vote", votes: votes(1), want: map[alert.Kind]int{alert.KindNegativeVote: 1}},
		{name: "a 2 is not negative by default", votes: votes(2), want: map[alert.Kind]int{}},
		{name: "a 2 with negative_max 2", cfg: Config{NegativeMax: 2}, votes: votes(2), want: map[alert.Kind]int{alert.KindNegativeVote: 1}},
		{name: "invalid vote ignored", votes: func() []protocol.Vote { v := votes(1); v[0].Valid = false; return v }(), want: map[alert.Kind]int{}},
		{name: "nps detractor is no keypad notice", votes: func() []protocol.Vote {
			v := votes(1)
			v[0].Scale = protocol.ScaleNPS11
			return v
		}(), want: map[alert.Kind]int{}},
		{name: "run of three negatives", votes: votes(1, 2, 1), want: map[alert.Kind]int{alert.KindNegativeVote: 2, alert.KindNegativeStreak: 1}},
		{name: "run broken", votes: votes(1, 2, 4, 1), want: map[alert.Kind]int{alert.KindNegativeVote: 2}},
		{name: "streak disabled", cfg: Config{StreakRun: -1}, votes: votes(1, 1, 1), want: map[alert.Kind]int{alert.KindNegativeVote: 3}},
		{name: "share drops below threshold", cfg: Config{MinVotes: 5, StreakRun: -1}, votes: votes(5, 3, 3, 4, 3),
			want: map[alert.Kind]int{alert.KindSatisfactionDrop: 1}},
		{name: "share recovers", cfg: Config{MinVotes: 5, StreakRun: -1}, votes: votes(5, 3, 3, 4, 3, 5, 5, 5, 5, 5),
			want: map[alert.Kind]int{alert.KindSatisfactionDrop: 3}, resolved: 1},
		{name: "too few votes for a share", cfg: Config{MinVotes: 10, StreakRun: -1}, votes: votes(3, 3, 3), want: map[alert.Kind]int{}},
		{name: "old votes leave the window", cfg: Config{MinVotes: 3, Window: 150 * time.Second, StreakRun: -1}, votes: votes(3, 3, 5, 5, 5),
			want: map[alert.Kind]int{alert.KindSatisfactionDrop: 1}, resolved: 1},
		{name: "positive streak", cfg: Config{PositiveRun: 3}, votes: votes(5, 4, 5, 5, 4, 5), want: map[alert.Kind]int{alert.KindPositiveStreak: 2}},
	}
	reg := fleet(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			w, err := New(Options{Config: tt.cfg, Raiser: rec, Registry: func() *registry.Registry { return reg }})
			if err != nil {
				t.Fatal(err)
			}
			p, _ := reg.Placement("kp-0001")
			for _, v := range tt.votes {
				w.watch(context.Background(), v, p)
			}
			got := rec.kinds()
			if len(got) != len(tt.want) {
				t.Fatalf("raised %v, want %v", got, tt.want)
			}
			for k, n := range tt.want {
				if got[k] != n {
					t.Fatalf("raised %v, want %v", got, tt.want)
				}
			}
			if len(rec.resolved) != tt.resolved {
				t.Errorf("resolved %v, want %d", rec.resolved, tt.resolved)
			}
		})
	}
}

func TestNegativeFindingDetails(t *testing.T) {
	reg := fleet(t)
	rec := &recorder{}
	w, _ := New(Options{Raiser: rec, Registry: func() *registry.Registry { return reg }})
	p, _ := reg.Placement("kp-0001")
	w.watch(context.Background(), votes(1)[0], p)
	f := rec.raised[0]
	d := f.Details
	if f.Subject.Counter != p.Counter || f.Subject.Device != "" {
		t.Errorf("subject %+v: want the counter, so votes there share one alert", f.Subject)
	}
	if d[alert.DetailResponsibleEmail] != "maria.ivanova@example.org" || d[alert.DetailResponsibleLang] != "bg" {
		t.Errorf("responsible not in details: %v", d)
	}
	for _, key := range []string{"score", "site_name", "counter_name", "operator_name", "service_name", "service_duration", "local_time"} {
		if d[key] == "" {
			t.Errorf("details lack %s: %v", key, d)
		}
	}
	if d["local_time"] != "14:00" { // 12:00 UTC in Sofia
		t.Errorf("local time %q, want the site's 14:00", d["local_time"])
	}
	if d["service_duration"] != "7m12s" {
		t.Errorf("service duration %q", d["service_duration"])
	}
}

// The notice names an operator of the device's own organisation only: an
// id of another organisation's employee shows as the bare id.
func TestNegativeFindingOperatorOfOwnOrganisation(t *testing.T) {
	reg := fleet(t)
	p, _ := reg.Placement("kp-0001") // sofia-municipality
	for _, tt := range []struct{ op, want string }{
		{"op-sofia-01", "Ivana Petrova"},
		{"op-volta-01", "op-volta-01"}, // Ioana Marin works for volta-energy
		{"op-ghost", "op-ghost"},
	} {
		rec := &recorder{}
		w, _ := New(Options{Raiser: rec, Registry: func() *registry.Registry { return reg }})
		v := votes(1)[0]
		v.Operator = tt.op
		w.watch(context.Background(), v, p)
		if got := rec.raised[0].Details["operator_name"]; got != tt.want {
			t.Errorf("operator %s: operator_name %q, want %q", tt.op, got, tt.want)
		}
		if strings.Contains(rec.raised[0].Message, "Ioana Marin") {
			t.Errorf("operator %s: message %q names another organisation's employee", tt.op, rec.raised[0].Message)
		}
	}
}

func TestOnVoteNeverBlocks(t *testing.T) {
	reg := fleet(t)
	w, err := New(Options{Raiser: &recorder{}, Registry: func() *registry.Registry { return reg }, QueueSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := reg.Placement("kp-0001")
	for _, v := range votes(1, 1, 1, 1, 1) {
		w.OnVote(v, p)
	}
	if w.Dropped() != 3 {
		t.Fatalf("dropped %d, want 3", w.Dropped())
	}
}

func TestRunWithManager(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := fleet(t)
	m, err := alert.New(ctx, alert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(Options{Raiser: m, Registry: func() *registry.Registry { return reg }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	p, _ := reg.Placement("kp-0001")
	for _, v := range votes(1, 5, 1) {
		w.OnVote(v, p)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, _ := m.List(ctx, alert.Filter{Kind: alert.KindNegativeVote})
		if len(list) == 1 && list[0].Count == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alerts = %+v, want one negative_vote alert counting 2 votes", list)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestNewOptions(t *testing.T) {
	reg := func() *registry.Registry { return nil }
	for name, o := range map[string]Options{
		"no raiser":       {Registry: reg},
		"negative_max 3":  {Raiser: &recorder{}, Registry: reg, Config: Config{NegativeMax: 3}},
		"share above one": {Raiser: &recorder{}, Registry: reg, Config: Config{SatisfiedMin: 1.5}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// failing is a Raiser whose first fails calls fail, as an alert store
// does while its database restarts.
type failing struct {
	recorder
	fails int
	calls int
}

func (f *failing) Raise(ctx context.Context, fd alert.Finding) error {
	f.calls++
	if f.calls <= f.fails {
		return errors.New("connect: connection refused")
	}
	return f.recorder.Raise(ctx, fd)
}

// A raise that fails for a moment is retried, not dropped; one that keeps
// failing is given up after raiseRetryFor.
func TestRaiseRetried(t *testing.T) {
	reg := fleet(t)
	p, _ := reg.Placement("kp-0001")
	defer func(d time.Duration) { raiseRetryFor = d }(raiseRetryFor)
	raiseRetryFor = 2 * time.Second

	r := &failing{fails: 3}
	w, _ := New(Options{Raiser: r, Registry: func() *registry.Registry { return reg }})
	w.watch(context.Background(), votes(1)[0], p)
	if len(r.raised) != 1 || r.calls != 4 {
		t.Errorf("after 3 failures: %d raised in %d calls, want 1 in 4", len(r.raised), r.calls)
	}

	r = &failing{fails: 1 << 30}
	w, _ = New(Options{Raiser: r, Registry: func() *registry.Registry { return reg }})
	start := time.Now()
	w.watch(context.Background(), votes(1)[0], p)
	if took := time.Since(start); len(r.raised) != 0 || took > 3*time.Second {
		t.Errorf("always failing: %d raised, gave up after %v; want none within about %v", len(r.raised), took, raiseRetryFor)
	}
}

// Two replicas each taking every other vote of a site judge its streak and
// its share from all of them when they share their windows; each alone
// sees half and raises nothing.
func TestReplicasShareWindows(t *testing.T) {
	reg := fleet(t)
	p, _ := reg.Placement("kp-0001")
	cfg := Config{StreakRun: 4, MinVotes: 4}
	for _, shared := range []bool{true, false} {
		rec := &recorder{}
		var ws [2]*Watcher
		one := NewMemory()
		for i := range ws {
			opts := Options{Config: cfg, Raiser: rec, Registry: func() *registry.Registry { return reg }, Windows: one}
			if !shared {
				opts.Windows = nil // each its own, in memory
			}
			w, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			ws[i] = w
		}
		for i, v := range votes(1, 2, 1, 2) {
			ws[i%2].watch(context.Background(), v, p)
		}
		got := rec.kinds()
		want := map[alert.Kind]int{alert.KindNegativeVote: 2, alert.KindNegativeStreak: 1, alert.KindSatisfactionDrop: 1}
		if !shared {
			want = map[alert.Kind]int{alert.KindNegativeVote: 2}
		}
		if len(got) != len(want) || got[alert.KindNegativeStreak] != want[alert.KindNegativeStreak] ||
			got[alert.KindSatisfactionDrop] != want[alert.KindSatisfactionDrop] || got[alert.KindNegativeVote] != 2 {
			t.Errorf("shared windows %v: raised %v, want %v", shared, got, want)
		}
	}
}

// Replicas hand votes over in no global order: the window keeps them in
// time order and judges by the newest.
func TestWindowOrdersVotes(t *testing.T) {
	var w SiteWindow
	for _, m := range []int{0, 3, 1, 2, 5} {
		w.add(t0.Add(time.Duration(m)*time.Minute), m != 1, 4*time.Minute, 10)
	}
	var got []int64
	for _, s := range w.Recent {
		got = append(got, (s.At-t0.UnixMilli())/60000)
	}
	if len(got) != 4 || got[0] != 1 || got[1] != 2 || got[2] != 3 || got[3] != 5 {
		t.Fatalf("window minutes %v, want [1 2 3 5] (0 fell out, 4 minutes before 5)", got)
	}
	if share, n := w.share(); n != 4 || share != 0.75 {
		t.Errorf("share %v of %d, want 0.75 of 4", share, n)
	}
	w.add(t0.Add(6*time.Minute), true, time.Hour, 3)
	if len(w.Recent) != 3 || w.Recent[0].At != t0.Add(3*time.Minute).UnixMilli() {
		t.Errorf("bounded to 3: %+v", w.Recent)
	}
}

// flakyWindows fails its first calls, as a shared store that is restarting.
type flakyWindows struct {
	*Memory
	fails int
}

func (f *flakyWindows) Site(ctx context.Context, key string, fn func(*SiteWindow)) error {
	if f.fails > 0 {
		f.fails--
		return errors.New("connection refused")
	}
	return f.Memory.Site(ctx, key, fn)
}

// A windows store that fails for a moment is retried: the streak still
// counts every vote.
func TestWindowsRetried(t *testing.T) {
	reg := fleet(t)
	p, _ := reg.Placement("kp-0001")
	rec := &recorder{}
	fw := &flakyWindows{Memory: NewMemory(), fails: 2}
	w, err := New(Options{Config: Config{StreakRun: 3, SatisfiedMin: -1}, Raiser: rec, Registry: func() *registry.Registry { return reg }, Windows: fw})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range votes(1, 1, 1) {
		w.watch(context.Background(), v, p)
	}
	if got := rec.kinds(); got[alert.KindNegativeStreak] != 1 || fw.fails != 0 {
		t.Errorf("raised %v with %d failures left, want one negative_streak after the store came back", got, fw.fails)
	}
}
