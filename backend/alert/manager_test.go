package alert

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/backend/alert/calendar"
)

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC) // a Tuesday

func dev(site, device string) Subject { return Subject{Org: "o1", Site: site, Device: device} }

func offline(site, device string) Finding {
	return Finding{Kind: KindOffline, Severity: SeverityWarning, Subject: dev(site, device), Message: device + " offline"}
}

// sharedMode makes newTestManager build shared managers (Options.Shared),
// for TestSharedModeBehavesTheSame. Tests here do not run in parallel.
var sharedMode bool

func newTestManager(t *testing.T, clock *clockwork.FakeClock, opts Options) *Manager {
	t.Helper()
	opts.Clock = clock
	opts.Shared = opts.Shared || sharedMode
	m, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// drain takes the notices Flush queued.
func drain(m *Manager) []Notice {
	var out []Notice
	for {
		select {
		case n := <-m.queue:
			out = append(out, n)
		default:
			return out
		}
	}
}

func TestRaiseDedupResolveAudit(t *testing.T) {
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(t0)
	var recorded []Event
	m := newTestManager(t, clock, Options{Record: func(_ context.Context, _ Alert, ev Event) error {
		recorded = append(recorded, ev)
		return nil
	}})
	for range 3 {
		if err := m.Raise(ctx, offline("s1", "kp-1")); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Minute)
	}
	open, _ := m.List(ctx, Filter{State: "open"})
	if len(open) != 1 || open[0].Count != 3 || open[0].State != StateFiring {
		t.Fatalf("open = %+v, want one firing alert seen 3 times", open)
	}
	id := open[0].ID
	if _, err := m.Acknowledge(ctx, id, "tech", "on my way"); err != nil {
		t.Fatal(err)
	}
	if err := m.Resolve(ctx, KindOffline, dev("s1", "kp-1"), "heartbeat again"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Acknowledge(ctx, id, "tech", ""); !errors.Is(err, ErrResolved) {
		t.Errorf("ack resolved: err = %v, want ErrResolved", err)
	}
	if _, err := m.ResolveByHand(ctx, 999, "tech", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("resolve unknown: err = %v, want ErrNotFound", err)
	}
	if err := m.Raise(ctx, offline("s1", "kp-1")); err != nil {
		t.Fatal(err)
	}
	open, _ = m.List(ctx, Filter{State: "open"})
	if len(open) != 1 || open[0].ID == id {
		t.Fatalf("after resolve a raise opens a new alert: %+v", open)
	}
	a, evs, err := m.Get(ctx, id)
	if err != nil || a.State != StateResolved || a.Reason != "heartbeat again" {
		t.Fatalf("Get = %+v, %v", a, err)
	}
	var actions []Action
	for _, e := range evs {
		actions = append(actions, e.Action)
	}
	want := []Action{ActionRaised, ActionAcknowledged, ActionResolved}
	if len(actions) != len(want) || actions[0] != want[0] || actions[1] != want[1] || actions[2] != want[2] {
		t.Errorf("audit trail = %v, want %v", actions, want)
	}
	if len(recorded) != 4 { // three changes of the first alert, one raise of the second
		t.Errorf("recorded %d state changes, want 4", len(recorded))
	}
}

func TestRaiseInvalid(t *testing.T) {
	m := newTestManager(t, clockwork.NewFakeClockAt(t0), Options{})
	for name, f := range map[string]Finding{
		"no kind":      {Subject: dev("s1", "kp-1")},
		"bad severity": {Kind: KindOffline, Severity: "dire"},
	} {
		if err := m.Raise(context.Background(), f); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestMute(t *testing.T) {
	ctx := context.Background()
	sundays, err := calendar.Parse(calendar.Spec{Hours: map[string]string{"sun": "00:00-06:00"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		silence  *Silence
		windows  []MaintenanceWindow
		at       time.Time
		findings []Finding
		devices  int
		want     int // notices
	}{
		{name: "nothing muted", findings: []Finding{offline("s1", "kp-1")}, want: 1},
		{name: "silence matches", silence: &Silence{Matchers: Matchers{"site": "s1"}, EndsAt: t0.Add(time.Hour), CreatedBy: "ops"},
			findings: []Finding{offline("s1", "kp-1")}, want: 0},
		{name: "silence for other kind", silence: &Silence{Matchers: Matchers{"kind": "stuck_key,clock_drift"}, EndsAt: t0.Add(time.Hour), CreatedBy: "ops"},
			findings: []Finding{offline("s1", "kp-1")}, want: 1},
		{name: "silence ended", silence: &Silence{Matchers: Matchers{"site": "s1"}, EndsAt: t0.Add(time.Minute), CreatedBy: "ops"},
			at: t0.Add(2 * time.Minute), findings: []Finding{offline("s1", "kp-1")}, want: 1},
		{name: "maintenance window open", windows: []MaintenanceWindow{{Name: "sunday", Matchers: Matchers{"org": "o1"}, Calendar: sundays}},
			at: time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC), findings: []Finding{offline("s1", "kp-1")}, want: 0},
		{name: "maintenance window closed", windows: []MaintenanceWindow{{Name: "sunday", Matchers: Matchers{"org": "o1"}, Calendar: sundays}},
			findings: []Finding{offline("s1", "kp-1")}, want: 1},
		// Both devices of s1 offline: one site_offline notice, the device
		// alerts inhibited.
		{name: "site offline inhibits devices", devices: 2, findings: []Finding{offline("s1", "kp-1"), offline("s1", "kp-2")}, want: 1},
		{name: "part of a site offline", devices: 3, findings: []Finding{offline("s1", "kp-1"), offline("s1", "kp-2")}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := tt.at
			if start.IsZero() {
				start = t0
			}
			clock := clockwork.NewFakeClockAt(t0)
			root, _ := NewRoute(RouteConfig{Receivers: []string{"tech"}, GroupWait: time.Second}, map[string]Receiver{"tech": {Name: "tech"}})
			opts := Options{Route: root, Receivers: map[string]Receiver{"tech": {Name: "tech"}}, Windows: tt.windows}
			if tt.devices > 0 {
				opts.SiteDevices = func(string, string) int { return tt.devices }
			}
			m := newTestManager(t, clock, opts)
			if tt.silence != nil {
				if _, err := m.AddSilence(ctx, *tt.silence); err != nil {
					t.Fatal(err)
				}
			}
			clock.Advance(start.Sub(t0))
			for _, f := range tt.findings {
				if err := m.Raise(ctx, f); err != nil {
					t.Fatal(err)
				}
			}
			m.Flush(ctx)
			clock.Advance(time.Second)
			m.Flush(ctx)
			got := drain(m)
			muted := 0
			list, _ := m.List(ctx, Filter{State: "open"})
			for _, a := range list {
				if a.MutedBy != "" {
					muted++
				}
			}
			if tt.want == 0 && muted != len(tt.findings) || tt.devices == 2 && muted != 2 {
				t.Errorf("List shows %d muted of %d: %+v", muted, len(list), list)
			}
			if len(got) != tt.want {
				t.Fatalf("notices = %d (%+v), want %d", len(got), got, tt.want)
			}
			if tt.devices == 2 && got[0].Kind != KindSiteOffline {
				t.Errorf("notice kind = %s, want site_offline", got[0].Kind)
			}
		})
	}
}

func TestSiteOfflineResolvesWhenADeviceReturns(t *testing.T) {
	ctx := context.Background()
	m := newTestManager(t, clockwork.NewFakeClockAt(t0), Options{SiteDevices: func(string, string) int { return 2 }})
	m.Raise(ctx, offline("s1", "kp-1"))
	m.Raise(ctx, offline("s1", "kp-2"))
	if got, _ := m.List(ctx, Filter{State: "open", Kind: KindSiteOffline}); len(got) != 1 {
		t.Fatalf("site_offline open = %d, want 1", len(got))
	}
	m.Resolve(ctx, KindOffline, dev("s1", "kp-2"), "back")
	if got, _ := m.List(ctx, Filter{State: "open", Kind: KindSiteOffline}); len(got) != 0 {
		t.Fatalf("site_offline still open after a device came back")
	}
}

func TestSilenceValidate(t *testing.T) {
	m := newTestManager(t, clockwork.NewFakeClockAt(t0), Options{})
	for name, s := range map[string]Silence{
		"no matchers":   {EndsAt: t0.Add(time.Hour), CreatedBy: "a"},
		"unknown label": {Matchers: Matchers{"colour": "red"}, EndsAt: t0.Add(time.Hour), CreatedBy: "a"},
		"no end":        {Matchers: Matchers{"site": "s1"}, CreatedBy: "a"},
		"ended":         {Matchers: Matchers{"site": "s1"}, StartsAt: t0.Add(-2 * time.Hour), EndsAt: t0.Add(-time.Hour), CreatedBy: "a"},
		"no author":     {Matchers: Matchers{"site": "s1"}, EndsAt: t0.Add(time.Hour)},
	} {
		if _, err := m.AddSilence(context.Background(), s); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	s, err := m.AddSilence(context.Background(), Silence{Matchers: Matchers{"site": "s1"}, EndsAt: t0.Add(time.Hour), CreatedBy: "a"})
	if err != nil || len(m.Silences()) != 1 {
		t.Fatalf("add: %v, silences %d", err, len(m.Silences()))
	}
	if err := m.DeleteSilence(context.Background(), s.ID); err != nil || len(m.Silences()) != 0 {
		t.Fatalf("delete: %v", err)
	}
	if err := m.DeleteSilence(context.Background(), s.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}

func TestGroupTiming(t *testing.T) {
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(t0)
	recv := map[string]Receiver{"tech": {Name: "tech", Lang: "bg"}}
	root, err := NewRoute(RouteConfig{Receivers: []string{"tech"}, GroupWait: 30 * time.Second,
		GroupInterval: 5 * time.Minute, RepeatInterval: time.Hour}, recv)
	if err != nil {
		t.Fatal(err)
	}
	m := newTestManager(t, clock, Options{Route: root, Receivers: recv})
	step := func(d time.Duration, raise ...Finding) []Notice {
		clock.Advance(d)
		for _, f := range raise {
			if err := m.Raise(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		m.Flush(ctx)
		return drain(m)
	}
	type want struct {
		notices int
		alerts  int
		repeat  bool
	}
	check := func(name string, got []Notice, w want) {
		t.Helper()
		if len(got) != w.notices {
			t.Fatalf("%s: %d notices, want %d", name, len(got), w.notices)
		}
		if w.notices > 0 && (len(got[0].Alerts) != w.alerts || got[0].Repeat != w.repeat || got[0].Lang != "bg") {
			t.Fatalf("%s: notice %+v, want %d alerts, repeat %v", name, got[0], w.alerts, w.repeat)
		}
	}
	check("first raise waits", step(0, offline("s1", "kp-1")), want{})
	check("second device joins the group", step(10*time.Second, offline("s1", "kp-2")), want{})
	check("other site is another group", step(0, offline("s2", "kp-9")), want{})
	got := step(20 * time.Second)
	if len(got) != 1 || got[0].Alerts[0].Subject.Site != "s1" {
		t.Fatalf("after s1's group wait: %+v, want s1's notice", got)
	}
	got = step(10 * time.Second)
	if len(got) != 1 || got[0].Alerts[0].Subject.Site != "s2" {
		t.Fatalf("after s2's group wait: %+v, want s2's notice", got)
	}
	check("unchanged group waits for repeat", step(0), want{})
	check("change waits for the group interval", step(time.Minute, offline("s1", "kp-3")), want{})
	got = step(4 * time.Minute)
	check("change sent after the group interval", got, want{1, 3, false})
	check("a repeat raise counts as a change", step(0, offline("s1", "kp-3")), want{})
	m.opts.Route.GroupInterval = 0 // make the next check depend on repeat only
	got = step(0)
	check("after count change", got, want{1, 3, false})
	got = step(time.Hour)
	if len(got) != 2 || !got[0].Repeat || !got[1].Repeat {
		t.Fatalf("repeat interval: %+v", got)
	}
	for _, a := range got[0].Alerts {
		m.Acknowledge(ctx, a.ID, "tech", "")
	}
	for _, a := range got[1].Alerts {
		m.Acknowledge(ctx, a.ID, "tech", "")
	}
	check("acknowledged alerts do not repeat", step(2*time.Hour), want{})
}

func TestRouteFind(t *testing.T) {
	recv := map[string]Receiver{"a": {}, "b": {}, "c": {}, "d": {}}
	root, err := NewRoute(RouteConfig{
		Receivers: []string{"a"},
		Routes: []RouteConfig{
			{Match: Matchers{"org": "bank"}, Receivers: []string{"b"}, Routes: []RouteConfig{
				{Match: Matchers{"severity": "critical"}, Receivers: []string{"c"}, Escalate: [][]string{{"d"}}},
			}},
			{Match: Matchers{"kind": "negative_vote"}, Receivers: []string{ReceiverResponsible}},
			{Match: Matchers{"site": "s9"}, GroupWait: time.Minute},
		},
	}, recv)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		a      Alert
		id     string
		levels int
		first  string
	}{
		{"default", Alert{Kind: KindOffline, Subject: Subject{Org: "city"}}, "0", 1, "a"},
		{"org", Alert{Kind: KindOffline, Severity: SeverityWarning, Subject: Subject{Org: "bank"}}, "0.0", 1, "b"},
		{"org and severity", Alert{Kind: KindOffline, Severity: SeverityCritical, Subject: Subject{Org: "bank"}}, "0.0.0", 2, "c"},
		{"kind", Alert{Kind: KindNegativeVote, Subject: Subject{Org: "city"}}, "0.1", 1, ReceiverResponsible},
		{"inherits receivers", Alert{Kind: KindOffline, Subject: Subject{Org: "city", Site: "s9"}}, "0.2", 1, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := root.Find(tt.a)
			if r.ID != tt.id || len(r.Levels) != tt.levels || r.Receivers(0)[0] != tt.first {
				t.Fatalf("Find = %s %v, want %s with %d levels starting %s", r.ID, r.Levels, tt.id, tt.levels, tt.first)
			}
		})
	}
	if _, err := NewRoute(RouteConfig{Receivers: []string{"nobody"}}, recv); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown receiver: err = %v", err)
	}
	if _, err := NewRoute(RouteConfig{Routes: []RouteConfig{{Match: Matchers{"colour": "x"}}}}, recv); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown label: err = %v", err)
	}
}

func TestResponsibleReceiver(t *testing.T) {
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(t0)
	root, _ := NewRoute(RouteConfig{Receivers: []string{ReceiverResponsible}, GroupWait: time.Second}, nil)
	m := newTestManager(t, clock, Options{Route: root, Lang: "en"})
	vote := func(counter, name, email, lang string) Finding {
		return Finding{Kind: KindNegativeVote, Subject: Subject{Org: "o1", Site: "s1", Counter: counter},
			Details: map[string]string{DetailResponsibleName: name, DetailResponsibleEmail: email, DetailResponsibleLang: lang}}
	}
	m.Raise(ctx, vote("c1", "Maria", "maria@example.org", "bg"))
	m.Raise(ctx, vote("c2", "Maria", "maria@example.org", "bg"))
	m.Raise(ctx, vote("c3", "Ivan", "ivan@example.org", ""))
	m.Raise(ctx, vote("c4", "", "", ""))
	m.Flush(ctx)
	clock.Advance(time.Second)
	m.Flush(ctx)
	got := drain(m)
	if len(got) != 2 {
		t.Fatalf("notices = %+v, want one per person", got)
	}
	if got[0].Receiver.Email[0] != "maria@example.org" || len(got[0].Alerts) != 2 || got[0].Lang != "bg" {
		t.Errorf("first notice = %+v", got[0])
	}
	if got[1].Receiver.Name != "Ivan" || got[1].Lang != "en" {
		t.Errorf("second notice = %+v", got[1])
	}
}

func TestEscalationOnBusinessCalendar(t *testing.T) {
	ctx := context.Background()
	cal, err := calendar.Parse(calendar.Spec{Timezone: "Europe/Sofia", Hours: map[string]string{"mon-fri": "09:00-18:00"}})
	if err != nil {
		t.Skip(err)
	}
	sofia := cal.Location()
	friday := time.Date(2026, 11, 27, 19, 0, 0, 0, sofia)
	clock := clockwork.NewFakeClockAt(friday)
	recv := map[string]Receiver{"tech": {Name: "tech"}, "lead": {Name: "lead"}}
	root, _ := NewRoute(RouteConfig{Receivers: []string{"tech"}, Escalate: [][]string{{"lead"}},
		Deadline: 3 * time.Hour, GroupWait: time.Second}, recv)
	m := newTestManager(t, clock, Options{Route: root, Receivers: recv, Calendar: func(Subject) *calendar.Calendar { return cal }})
	if err := m.Raise(ctx, offline("s1", "kp-1")); err != nil {
		t.Fatal(err)
	}
	open, _ := m.List(ctx, Filter{State: "open"})
	wantDue := time.Date(2026, 11, 30, 12, 0, 0, 0, sofia)
	if !open[0].DueAt.Equal(wantDue) {
		t.Fatalf("due %s, want %s (Monday late morning)", open[0].DueAt.In(sofia), wantDue)
	}
	m.Flush(ctx)
	clock.Advance(time.Second)
	m.Flush(ctx)
	if got := drain(m); len(got) != 1 || got[0].Receiver.Name != "tech" || got[0].Escalation != 0 {
		t.Fatalf("first notice: %+v", got)
	}
	clock.Advance(wantDue.Sub(clock.Now()) - time.Minute)
	m.CheckDeadlines(ctx)
	if a, _, _ := m.Get(ctx, open[0].ID); a.Escalation != 0 {
		t.Fatalf("escalated before the deadline")
	}
	clock.Advance(time.Minute)
	if err := m.CheckDeadlines(ctx); err != nil {
		t.Fatal(err)
	}
	a, evs, _ := m.Get(ctx, open[0].ID)
	if a.Escalation != 1 || evs[len(evs)-1].Action != ActionEscalated {
		t.Fatalf("after deadline: %+v, events %+v", a, evs)
	}
	if want := time.Date(2026, 11, 30, 15, 0, 0, 0, sofia); !a.DueAt.Equal(want) {
		t.Errorf("next due %s, want %s", a.DueAt.In(sofia), want)
	}
	m.Flush(ctx)
	clock.Advance(time.Second)
	m.Flush(ctx)
	if got := drain(m); len(got) != 1 || got[0].Receiver.Name != "lead" || got[0].Escalation != 1 || got[0].Repeat {
		t.Fatalf("escalation notice: %+v", got)
	}
	// Past the last level nothing escalates further.
	clock.Advance(4 * time.Hour)
	m.CheckDeadlines(ctx)
	if a, _, _ := m.Get(ctx, open[0].ID); a.Escalation != 1 || !a.DueAt.IsZero() {
		t.Fatalf("past the last level: %+v", a)
	}
}

func TestExpire(t *testing.T) {
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(t0)
	m := newTestManager(t, clock, Options{Expire: map[Kind]time.Duration{KindNegativeVote: 30 * time.Minute}})
	m.Raise(ctx, Finding{Kind: KindNegativeVote, Subject: Subject{Site: "s1", Counter: "c1"}})
	m.Raise(ctx, offline("s1", "kp-1"))
	clock.Advance(29 * time.Minute)
	m.CheckDeadlines(ctx)
	if open, _ := m.List(ctx, Filter{State: "open"}); len(open) != 2 {
		t.Fatalf("expired early")
	}
	clock.Advance(time.Minute)
	m.CheckDeadlines(ctx)
	open, _ := m.List(ctx, Filter{State: "open"})
	if len(open) != 1 || open[0].Kind != KindOffline {
		t.Fatalf("open after expiry = %+v", open)
	}
}

// flaky fails with a recoverable error the first fails times.
type recorder struct {
	mu    sync.Mutex
	fails int
	perm  bool
	calls int
	got   chan Notice
}

func (r *recorder) Notify(_ context.Context, n Notice) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.calls <= r.fails {
		return !r.perm, errors.New("smtp: 421 try later")
	}
	r.got <- n
	return false, nil
}

func TestRunNotifiesWithRetryOnFakeClock(t *testing.T) {
	tests := []struct {
		name      string
		fails     int
		permanent bool
		delivered bool
	}{
		{"first try", 0, false, true},
		{"after two recoverable failures", 2, false, true},
		{"permanent failure gives up", 1, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			clock := clockwork.NewFakeClockAt(t0)
			rec := &recorder{fails: tt.fails, perm: tt.permanent, got: make(chan Notice, 4)}
			recv := map[string]Receiver{"tech": {Name: "tech"}}
			root, _ := NewRoute(RouteConfig{Receivers: []string{"tech"}, GroupWait: time.Second}, recv)
			m := newTestManager(t, clock, Options{Route: root, Receivers: recv, Notifiers: []Notifier{rec},
				Tick: time.Second, CheckEvery: time.Minute})
			done := make(chan error, 1)
			go func() { done <- m.Run(ctx) }()
			if err := m.Raise(ctx, offline("s1", "kp-1")); err != nil {
				t.Fatal(err)
			}
			deadline := time.After(20 * time.Second)
			for delivered := false; !delivered; {
				// Advance the fake clock in steps while workers and the
				// scheduler wait on it; stop once the notice arrives or,
				// for a permanent failure, once the one call was made.
				clock.Advance(500 * time.Millisecond)
				select {
				case n := <-rec.got:
					if !tt.delivered {
						t.Fatalf("delivered %+v despite a permanent failure", n)
					}
					delivered = true
				case <-deadline:
					t.Fatal("no notice delivered in time")
				case <-time.After(5 * time.Millisecond):
					rec.mu.Lock()
					calls := rec.calls
					rec.mu.Unlock()
					if !tt.delivered && calls > 0 {
						clock.Advance(time.Minute) // a retry would come within this
						select {
						case <-rec.got:
							t.Fatal("retried a permanent failure")
						case <-time.After(20 * time.Millisecond):
						}
						delivered = true
					}
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if tt.delivered && rec.calls != tt.fails+1 {
				t.Errorf("calls = %d, want %d", rec.calls, tt.fails+1)
			}
		})
	}
}

func TestRunEscalatesOnGocronJob(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clock := clockwork.NewFakeClockAt(t0)
	recv := map[string]Receiver{"tech": {Name: "tech"}, "lead": {Name: "lead"}}
	root, _ := NewRoute(RouteConfig{Receivers: []string{"tech"}, Escalate: [][]string{{"lead"}}, Deadline: 3 * time.Hour}, recv)
	m := newTestManager(t, clock, Options{Route: root, Receivers: recv, Tick: time.Minute, CheckEvery: 10 * time.Minute})
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	if err := m.Raise(ctx, offline("s1", "kp-1")); err != nil {
		t.Fatal(err)
	}
	// The scheduler's two jobs wait on the fake clock; then step through
	// the three hours and a bit until the job has escalated.
	if err := clock.BlockUntilContext(ctx, 2); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		clock.Advance(10 * time.Minute)
		a, _, _ := m.Get(ctx, 1)
		if a.Escalation == 1 {
			if clock.Since(t0) < 3*time.Hour {
				t.Fatalf("escalated after %s, before the deadline", clock.Since(t0))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not escalated by %s", clock.Since(t0))
		}
		time.Sleep(2 * time.Millisecond) // let the job goroutine take the tick
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A restarted manager does not notify again what its predecessor
// notified, until the repeat interval.
func TestRestartKeepsNotifiedTime(t *testing.T) {
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(t0)
	store := NewMemStore()
	recv := map[string]Receiver{"tech": {Name: "tech"}}
	root, _ := NewRoute(RouteConfig{Receivers: []string{"tech"}, GroupWait: time.Second, RepeatInterval: time.Hour}, recv)
	opts := Options{Store: store, Route: root, Receivers: recv}
	m := newTestManager(t, clock, opts)
	m.Raise(ctx, offline("s1", "kp-1"))
	m.Flush(ctx)
	clock.Advance(time.Second)
	m.Flush(ctx)
	if got := drain(m); len(got) != 1 {
		t.Fatalf("first process: %d notices", len(got))
	}

	m = newTestManager(t, clock, opts)
	m.Raise(ctx, offline("s1", "kp-2")) // a new alert after the restart is notified
	for range 3 {
		m.Flush(ctx)
		clock.Advance(time.Second)
	}
	got := drain(m)
	if len(got) != 1 || len(got[0].Alerts) != 2 {
		t.Fatalf("after restart with a new alert: %+v", got)
	}
	m = newTestManager(t, clock, opts)
	for range 3 {
		m.Flush(ctx)
		clock.Advance(time.Second)
	}
	if got := drain(m); len(got) != 0 {
		t.Fatalf("restart re-notified: %+v", got)
	}
	clock.Advance(time.Hour)
	m.Flush(ctx)
	if got := drain(m); len(got) != 1 || !got[0].Repeat {
		t.Fatalf("repeat after restart: %+v", got)
	}
}
