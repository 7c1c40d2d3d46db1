package incident_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/calendar"
	"github.com/semko/semko/backend/incident"
	"github.com/semko/semko/backend/incident/sqlite"
	"github.com/semko/semko/internal/testwait"
)

// recorder is an alert.Raiser and a spool that remember what they got;
// beside the real SQLite store they show what the desk reports.
type recorder struct {
	mu       sync.Mutex
	raised   []alert.Finding
	resolved []alert.Subject
	lines    []string
}

func (r *recorder) Raise(_ context.Context, f alert.Finding) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.raised = append(r.raised, f)
	return nil
}

func (r *recorder) Resolve(_ context.Context, _ alert.Kind, s alert.Subject, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resolved = append(r.resolved, s)
	return nil
}

func (r *recorder) Append(_ context.Context, recs ...[]byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range recs {
		r.lines = append(r.lines, string(b))
	}
	return nil
}

func (r *recorder) linesWith(sub string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

var sofia = mustCal(calendar.Spec{Timezone: "Europe/Sofia", Hours: map[string]string{"mon-fri": "09:00-18:00", "sat": "10:00-14:00"},
	Holidays: []string{"2026-12-24", "2026-12-25"}})

func mustCal(s calendar.Spec) *calendar.Calendar {
	c, err := calendar.Parse(s)
	if err != nil {
		panic(err)
	}
	return c
}

type fixture struct {
	desk  *incident.Desk
	clock *clockwork.FakeClock
	rec   *recorder
	dir   string
}

func newDesk(t *testing.T, start time.Time, cfg incident.Config) fixture {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "incidents.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	files, err := incident.NewFiles(filepath.Join(dir, "files"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	clock := clockwork.NewFakeClockAt(start)
	rec := &recorder{}
	d, err := incident.New(incident.Options{Config: cfg, Store: store, Files: files, Clock: clock,
		Calendar: func(string) *calendar.Calendar { return sofia }, Raiser: rec, Spool: rec,
		Known: func(org, site string) bool { return org == "shop" || org == "bank" }})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{desk: d, clock: clock, rec: rec, dir: dir}
}

var (
	cs      = access.Principal{Account: "olga", Role: access.CustomerService, Scope: access.Scope{Orgs: []string{"shop"}}}
	manager = access.Principal{Account: "petar", Role: access.Manager, Scope: access.Scope{Sites: []string{"mall"}}}
	viewer  = access.Principal{Account: "vera", Role: access.Viewer, Scope: access.Scope{Orgs: []string{"shop"}}}
	banker  = access.Principal{Account: "boris", Role: access.CustomerService, Scope: access.Scope{Orgs: []string{"bank"}}}
)

func draft() incident.Draft {
	return incident.Draft{Org: "shop", Site: "mall", Department: "retail", Channel: incident.ChannelInPerson, Type: incident.TypeService,
		CustomerName: "Иван Петров", CustomerContact: "+359 888 000 000", RemarkNo: "17", Description: "Waited 40 minutes at the service desk."}
}

func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, sofia.Location())
	if err != nil {
		panic(err)
	}
	return t
}

// The deadline is the department's maximum time in the site's working
// hours: business hours, evenings, weekends, holidays and the DST change.
func TestDeadlines(t *testing.T) {
	cases := []struct {
		name       string
		registered string
		dept       string
		due        string
	}{
		{"within a day", "2026-12-02 10:00", "retail", "2026-12-02 13:00"},
		{"runs into the next morning", "2026-12-02 16:30", "retail", "2026-12-03 10:30"},
		{"before opening", "2026-12-02 07:00", "retail", "2026-12-02 12:00"},
		{"friday evening to saturday's short hours", "2026-12-04 17:00", "retail", "2026-12-05 12:00"},
		{"saturday afternoon to monday", "2026-12-05 13:00", "retail", "2026-12-07 11:00"},
		{"over the christmas holidays", "2026-12-23 17:00", "retail", "2026-12-26 12:00"},
		{"call centre call: minutes", "2026-12-02 17:55", "call_centre_call", "2026-12-03 09:10"},
		// 2027-03-28 is the spring DST change in Sofia (a Sunday); Friday
		// 17:00 + 3h runs Friday 1h, Saturday 2h: the wall clock holds.
		{"across the spring DST change", "2027-03-26 17:00", "retail", "2027-03-27 12:00"},
		{"across the autumn DST change", "2026-10-23 16:00", "retail", "2026-10-24 11:00"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newDesk(t, at(tc.registered), incident.Config{})
			d := draft()
			d.Department = tc.dept
			in, err := f.desk.Register(context.Background(), cs, d)
			if err != nil {
				t.Fatal(err)
			}
			if want := at(tc.due); !in.DueAt.Equal(want) {
				t.Fatalf("due %s, want %s", in.DueAt.In(sofia.Location()), want)
			}
			// Not overdue a minute before, overdue at the deadline.
			setClock(f.clock, in.DueAt.Add(-time.Minute))
			if n, err := f.desk.CheckDeadlines(context.Background()); err != nil || n != 0 {
				t.Fatalf("a minute early: %d marked, %v", n, err)
			}
			setClock(f.clock, in.DueAt)
			if n, err := f.desk.CheckDeadlines(context.Background()); err != nil || n != 1 {
				t.Fatalf("at the deadline: %d marked, %v", n, err)
			}
			if n, _ := f.desk.CheckDeadlines(context.Background()); n != 0 {
				t.Fatal("an overdue incident was marked twice")
			}
		})
	}
}

// The life cycle, step by step, as a table: each step's result state or
// refusal, on one incident.
func TestLifeCycle(t *testing.T) {
	ctx := context.Background()
	f := newDesk(t, at("2026-12-02 10:00"), incident.Config{})
	in, err := f.desk.Register(ctx, cs, draft())
	if err != nil {
		t.Fatal(err)
	}
	id := in.ID
	steps := []struct {
		name    string
		advance time.Duration
		do      func() (incident.Incident, error)
		state   incident.State
		err     error
	}{
		{"update before pass-on", 0, func() (incident.Incident, error) { return f.desk.Update(ctx, cs, id, "x") }, "", incident.ErrTransition},
		{"close before pass-on", 0, func() (incident.Incident, error) { return f.desk.Close(ctx, cs, id, "done", true, "") }, "", incident.ErrTransition},
		{"viewer may not pass on", 0, func() (incident.Incident, error) { return f.desk.PassOn(ctx, viewer, id, "maria", "go") }, "", incident.ErrForbidden},
		{"other organisation: not found", 0, func() (incident.Incident, error) { return f.desk.PassOn(ctx, banker, id, "maria", "go") }, "", incident.ErrNotFound},
		{"pass-on without comment", 0, func() (incident.Incident, error) { return f.desk.PassOn(ctx, cs, id, "maria", " ") }, "", incident.ErrInvalid},
		{"pass on", 20 * time.Minute, func() (incident.Incident, error) {
			return f.desk.PassOn(ctx, cs, id, "maria", "Please call the customer")
		}, incident.StatePassed, nil},
		{"update without comment", 0, func() (incident.Incident, error) { return f.desk.Update(ctx, cs, id, "") }, "", incident.ErrInvalid},
		{"responsible person updates", time.Hour, func() (incident.Incident, error) {
			return f.desk.Update(ctx, access.Principal{Account: "maria", Role: access.Technician, Scope: access.Scope{Sites: []string{"mall"}}}, id, "Customer invited for tomorrow")
		}, incident.StateInProgress, nil},
		{"someone else in scope may not", 0, func() (incident.Incident, error) {
			return f.desk.Update(ctx, access.Principal{Account: "kiril", Role: access.Technician, Scope: access.Scope{Sites: []string{"mall"}}}, id, "me too")
		}, "", incident.ErrForbidden},
		{"close without outcome", 0, func() (incident.Incident, error) { return f.desk.Close(ctx, manager, id, "", true, "") }, "", incident.ErrInvalid},
		{"close", time.Hour, func() (incident.Incident, error) {
			return f.desk.Close(ctx, manager, id, "The customer came, the goods were exchanged", true, "")
		}, incident.StateClosed, nil},
		{"close twice", 0, func() (incident.Incident, error) { return f.desk.Close(ctx, manager, id, "again", true, "") }, "", incident.ErrTransition},
		{"reopen", 24 * time.Hour, func() (incident.Incident, error) { return f.desk.Reopen(ctx, cs, id, "The customer called again") }, incident.StateInProgress, nil},
		{"late close needs a reason", 48 * time.Hour, func() (incident.Incident, error) { return f.desk.Close(ctx, cs, id, "refunded", false, "") }, "", incident.ErrInvalid},
		{"late close with a reason", 0, func() (incident.Incident, error) {
			return f.desk.Close(ctx, cs, id, "refunded", false, "waiting_for_supplier")
		}, incident.StateClosed, nil},
	}
	for _, s := range steps {
		f.clock.Advance(s.advance)
		got, err := s.do()
		if s.err != nil {
			if !errors.Is(err, s.err) {
				t.Fatalf("%s: err %v, want %v", s.name, err, s.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got.State != s.state {
			t.Fatalf("%s: state %s, want %s", s.name, got.State, s.state)
		}
	}
	trail, err := f.desk.Trail(ctx, cs, id)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for i, st := range trail {
		actions = append(actions, string(st.Action))
		if i > 0 && st.Time.Before(trail[i-1].Time) {
			t.Fatalf("trail out of order: %+v", trail)
		}
	}
	if got, want := strings.Join(actions, ","), "registered,passed,updated,closed,reopened,closed"; got != want {
		t.Fatalf("trail %s, want %s", got, want)
	}
	final, _ := f.desk.Get(ctx, cs, id)
	if final.DelayReason != "waiting_for_supplier" || final.Reopened != 1 || final.CalledBack {
		t.Fatalf("final %+v", final)
	}
	// Points: the first close within the deadline, the second not.
	if f.rec.linesWith("state=closed") != 2 || f.rec.linesWith("within_deadline=1i") != 1 || f.rec.linesWith("reason=waiting_for_supplier") != 1 {
		t.Fatalf("points:\n%s", strings.Join(f.rec.lines, "\n"))
	}
	if _, err := f.desk.Get(ctx, banker, id); !errors.Is(err, incident.ErrNotFound) {
		t.Fatalf("another organisation reads it: %v", err)
	}
}

// Interaction errors come back per field, nothing is stored, and they are
// counted for the department as a `rejected` point.
func TestInteractionErrors(t *testing.T) {
	ctx := context.Background()
	f := newDesk(t, at("2026-12-02 10:00"), incident.Config{})
	d := draft()
	d.RemarkNo, d.Description, d.CustomerName = "", "", "x1?"
	_, err := f.desk.Register(ctx, cs, d)
	var fe *incident.FieldErrors
	if !errors.As(err, &fe) {
		t.Fatalf("err %v, want field errors", err)
	}
	for field, code := range map[string]string{"remark_no": incident.ErrCodeRemark, "description": incident.ErrCodeComment, "customer_name": incident.ErrCodeName} {
		if fe.Fields[field] == "" || fe.Codes[field] != code {
			t.Errorf("field %s: %q code %q, want code %s", field, fe.Fields[field], fe.Codes[field], code)
		}
	}
	if l, _ := f.desk.List(ctx, cs, incident.Filter{}); len(l) != 0 {
		t.Fatalf("a refused incident was stored: %+v", l)
	}
	if f.rec.linesWith("state=rejected") != 1 || f.rec.linesWith("errors=3i") != 1 {
		t.Fatalf("points:\n%s", strings.Join(f.rec.lines, "\n"))
	}

	// Names: plausible in any script; illegible ones refused.
	for name, ok := range map[string]bool{"Мария Иванова-Петрова": true, "O'Brien": true, "Li": true, "??": false, "xx": false, "1234": false, "J": false} {
		d := draft()
		d.CustomerName = name
		_, err := f.desk.Register(ctx, cs, d)
		if (err == nil) != ok {
			t.Errorf("name %q: err %v", name, err)
		}
	}

	// A quality conflict needs its document before it is passed on; a
	// low-resolution scan is refused when attached.
	d = draft()
	d.Type = incident.TypeQuality
	in, err := f.desk.Register(ctx, cs, d)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.desk.PassOn(ctx, cs, in.ID, "maria", "see the claim")
	if !errors.As(err, &fe) || fe.Codes["attachments"] != incident.ErrCodeDocuments {
		t.Fatalf("pass-on without documents: %v", err)
	}
	if _, err := f.desk.Attach(ctx, cs, in.ID, "blurred.png", bytes.NewReader(pngOf(t, 320, 200))); !errors.As(err, &fe) || fe.Codes["attachments"] != incident.ErrCodeResolution {
		t.Fatalf("low-resolution scan: %v", err)
	}
	if _, err := f.desk.Attach(ctx, cs, in.ID, "claim.png", bytes.NewReader(pngOf(t, 1240, 1754))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.desk.Attach(ctx, cs, in.ID, "evil.html", strings.NewReader("<html><script>alert(1)</script>")); !errors.Is(err, incident.ErrFileType) {
		t.Fatalf("html attachment: %v", err)
	}
	if _, err := f.desk.Attach(ctx, cs, in.ID, "huge.png", bytes.NewReader(make([]byte, 2<<20))); !errors.Is(err, incident.ErrTooLarge) {
		t.Fatalf("huge attachment: %v", err)
	}
	got, err := f.desk.PassOn(ctx, cs, in.ID, "maria", "see the claim")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Attachments) != 1 || got.Attachments[0].Width != 1240 || got.Errors[incident.ErrCodeDocuments] != 1 || got.Errors[incident.ErrCodeResolution] != 1 {
		t.Fatalf("after pass-on: %+v", got)
	}
}

func pngOf(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A missed deadline raises one incident_overdue alert with the link;
// closing resolves it. Late reactions count once per missed deadline.
func TestOverdueEscalates(t *testing.T) {
	ctx := context.Background()
	f := newDesk(t, at("2026-12-04 16:00"), incident.Config{BaseURL: "https://semko.example.org/"})
	in, err := f.desk.Register(ctx, cs, draft())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.desk.PassOn(ctx, cs, in.ID, "maria", "call her"); err != nil {
		t.Fatal(err)
	}
	// Friday 16:00 + 3 working hours: Saturday 11:00.
	setClock(f.clock, at("2026-12-05 11:00"))
	if n, _ := f.desk.CheckDeadlines(ctx); n != 1 {
		t.Fatalf("marked %d", n)
	}
	if len(f.rec.raised) != 1 {
		t.Fatalf("raised %+v", f.rec.raised)
	}
	fd := f.rec.raised[0]
	if fd.Kind != alert.KindIncidentOverdue || fd.Details[incident.DetailLink] != "https://semko.example.org/incidents/1" || fd.Subject.Site != "mall" {
		t.Fatalf("finding %+v", fd)
	}
	if _, err := f.desk.Close(ctx, cs, in.ID, "exchanged", true, "staff_absent"); err != nil {
		t.Fatal(err)
	}
	if len(f.rec.resolved) != 1 || f.rec.resolved[0] != fd.Subject {
		t.Fatalf("resolved %+v", f.rec.resolved)
	}
	if f.rec.linesWith("state=overdue") != 1 || f.rec.linesWith("late=1i") != 1 {
		t.Fatalf("points:\n%s", strings.Join(f.rec.lines, "\n"))
	}
}

// The customer's name and contact are deleted RetainPersonal after the
// close, and the trail says so.
func TestPurgePersonal(t *testing.T) {
	ctx := context.Background()
	f := newDesk(t, at("2026-12-02 10:00"), incident.Config{RetainPersonal: 30 * 24 * time.Hour})
	in, _ := f.desk.Register(ctx, cs, draft())
	f.desk.PassOn(ctx, cs, in.ID, "maria", "go")
	if _, err := f.desk.Close(ctx, cs, in.ID, "done", true, ""); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(29 * 24 * time.Hour)
	if n, _ := f.desk.PurgePersonal(ctx); n != 0 {
		t.Fatal("purged before the retention period")
	}
	f.clock.Advance(48 * time.Hour)
	if n, err := f.desk.PurgePersonal(ctx); n != 1 || err != nil {
		t.Fatalf("purged %d, %v", n, err)
	}
	got, _ := f.desk.Get(ctx, cs, in.ID)
	if got.CustomerName != "" || got.CustomerContact != "" || got.PurgedAt.IsZero() || got.Description == "" {
		t.Fatalf("after purge %+v", got)
	}
	trail, _ := f.desk.Trail(ctx, cs, in.ID)
	if trail[len(trail)-1].Action != incident.ActionPurged {
		t.Fatalf("trail %+v", trail)
	}
}

// Run checks deadlines on its clock's ticker: the fake clock drives it.
func TestRunChecksOnTicker(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := newDesk(t, at("2026-12-02 17:00"), incident.Config{CheckEvery: time.Minute})
	in, _ := f.desk.Register(ctx, cs, draft())
	done := make(chan error, 1)
	go func() { done <- f.desk.Run(ctx) }()
	if err := f.clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	setClock(f.clock, in.DueAt.Add(time.Minute))
	testwait.For(t, "the ticker's deadline check", func() bool {
		got, _ := f.desk.Get(ctx, cs, in.ID)
		return got.Overdue
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func setClock(c *clockwork.FakeClock, t time.Time) { c.Advance(t.Sub(c.Now())) }
