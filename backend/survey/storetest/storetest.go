// Package storetest checks that a survey.Store behaves as the engine
// expects; every implementation runs it in its tests.
package storetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/semko/semko/backend/survey"
)

// Run exercises fresh stores made by open.
func Run(t *testing.T, open func(t *testing.T) survey.Store) {
	t.Run("SendRule", func(t *testing.T) { testSendRule(t, open(t)) })
	t.Run("Invitation", func(t *testing.T) { testInvitation(t, open(t)) })
	t.Run("AnswerOnce", func(t *testing.T) { testAnswerOnce(t, open(t)) })
	t.Run("Voter", func(t *testing.T) { testVoter(t, open(t)) })
	t.Run("FollowUp", func(t *testing.T) { testFollowUp(t, open(t)) })
	t.Run("Forget", func(t *testing.T) { testForget(t, open(t)) })
}

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

const month = 30 * 24 * time.Hour

func testSendRule(t *testing.T, s survey.Store) {
	ctx := context.Background()
	if err := s.ReserveSend(ctx, "o1", "h1", t0, t0.Add(-6*month)); err != nil {
		t.Fatal(err)
	}
	// A month later: within six months.
	t1 := t0.Add(month)
	if err := s.ReserveSend(ctx, "o1", "h1", t1, t1.Add(-6*month)); !errors.Is(err, survey.ErrRecent) {
		t.Fatalf("second invitation within the period: err = %v, want ErrRecent", err)
	}
	// Another organisation has its own rule.
	if err := s.ReserveSend(ctx, "o2", "h1", t1, t1.Add(-6*month)); err != nil {
		t.Fatalf("other org: %v", err)
	}
	// Seven months later it may be invited again.
	t7 := t0.Add(7 * month)
	if err := s.ReserveSend(ctx, "o1", "h1", t7, t7.Add(-6*month)); err != nil {
		t.Fatalf("after the period: %v", err)
	}
	// A failed send releases its reservation.
	if err := s.ReserveSend(ctx, "o1", "h2", t0, t0.Add(-6*month)); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseSend(ctx, "o1", "h2", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.ReserveSend(ctx, "o1", "h2", t0.Add(time.Minute), t0.Add(-6*month)); err != nil {
		t.Fatalf("after release: %v", err)
	}
	// Unsubscribed: never again, in no organisation.
	if err := s.Unsubscribe(ctx, "h3", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Unsubscribe(ctx, "h3", t0.Add(time.Hour)); err != nil {
		t.Fatalf("second unsubscribe: %v", err)
	}
	far := t0.Add(100 * month)
	if err := s.ReserveSend(ctx, "o9", "h3", far, far.Add(-6*month)); !errors.Is(err, survey.ErrUnsubscribed) {
		t.Fatalf("unsubscribed: err = %v", err)
	}
	// Two contacts at once: one invitation.
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 8 {
		wg.Go(func() {
			if s.ReserveSend(ctx, "o1", "h4", t0, t0.Add(-6*month)) == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d concurrent reservations succeeded, want 1", ok)
	}
}

func testInvitation(t *testing.T, s survey.Store) {
	ctx := context.Background()
	inv := survey.Invitation{ID: survey.NewID(), Org: "o1", Site: "s1", Counter: "c1", Device: "kp-1", Operator: "op", Service: "sv",
		Channel: survey.ChannelEmail, Lang: "bg", Created: t0, Expires: t0.Add(month)}
	if err := s.SaveInvitation(ctx, inv); err != nil {
		t.Fatal(err)
	}
	got, err := s.Invitation(ctx, inv.ID)
	if err != nil || got.Counter != "c1" || got.Lang != "bg" || !got.Expires.Equal(inv.Expires) || got.Channel != survey.ChannelEmail {
		t.Fatalf("Invitation = %+v, %v", got, err)
	}
	if _, err := s.Invitation(ctx, "nope"); !errors.Is(err, survey.ErrNotFound) {
		t.Fatalf("missing: err = %v", err)
	}
	if err := s.SaveInvitation(ctx, inv); err == nil {
		t.Fatal("duplicate invitation id saved")
	}
}

func answer(id string, score int) survey.Answer {
	return survey.Answer{ID: id, Invitation: id, Org: "o1", Site: "s1", Counter: "c1", Device: "kp-1", Channel: survey.ChannelEmail,
		Lang: "en", Score: score, Time: t0}
}

func testAnswerOnce(t *testing.T, s survey.Store) {
	ctx := context.Background()
	a := answer("inv-1", 3)
	f := &survey.FollowUp{Org: "o1", Site: "s1", Counter: "c1", Score: 3, Channel: survey.ChannelEmail, Opened: t0, Due: t0.Add(3 * time.Hour)}
	got, isNew, err := s.RecordAnswer(ctx, a, time.Time{}, f)
	if err != nil || !isNew || got.Seq <= 0 || f.ID <= 0 {
		t.Fatalf("RecordAnswer = %+v, %v, %v (follow-up %d)", got, isNew, err, f.ID)
	}
	// The second click, the reload, the other tab: the first answer stands.
	var wg sync.WaitGroup
	for score := range 11 {
		wg.Go(func() {
			b := answer("inv-1", score)
			f2 := &survey.FollowUp{Org: "o1", Site: "s1", Counter: "c1", Score: score, Opened: t0, Due: t0}
			again, isNew, err := s.RecordAnswer(ctx, b, time.Time{}, f2)
			if err != nil || isNew || again.Score != 3 || again.Seq != got.Seq {
				t.Errorf("repeat with %d: %+v, new=%v, %v", score, again, isNew, err)
			}
		})
	}
	wg.Wait()
	if fs, _ := s.FollowUps(ctx, survey.FollowUpFilter{}); len(fs) != 1 {
		t.Fatalf("%d follow-ups, want 1", len(fs))
	}
	if _, _, err := s.RecordAnswer(ctx, answer("inv-x", 11), time.Time{}, nil); !errors.Is(err, survey.ErrInvalid) {
		t.Fatalf("score 11: err = %v", err)
	}

	// Reasons once; the follow-up takes them and the contact.
	r, isNew, err := s.SetReasons(ctx, "inv-1", []string{"speed", "information"}, "slow", "a@b.example", t0.Add(time.Minute))
	if err != nil || !isNew || !slices.Equal(r.Reasons, []string{"speed", "information"}) || r.Comment != "slow" {
		t.Fatalf("SetReasons = %+v, %v, %v", r, isNew, err)
	}
	r2, isNew, err := s.SetReasons(ctx, "inv-1", []string{"other"}, "changed my mind", "", t0.Add(2*time.Minute))
	if err != nil || isNew || r2.Comment != "slow" {
		t.Fatalf("second SetReasons = %+v, %v, %v", r2, isNew, err)
	}
	if _, _, err := s.SetReasons(ctx, "nope", nil, "", "", t0); !errors.Is(err, survey.ErrNotFound) {
		t.Fatalf("reasons for missing answer: err = %v", err)
	}
	fu, err := s.FollowUp(ctx, f.ID)
	if err != nil || fu.Comment != "slow" || fu.Contact != "a@b.example" || len(fu.Reasons) != 2 || fu.Answer != "inv-1" {
		t.Fatalf("FollowUp = %+v, %v", fu, err)
	}

	// Spooling: listed until marked.
	un, err := s.Unspooled(ctx, 10)
	if err != nil || len(un) != 1 || un[0].ID != "inv-1" {
		t.Fatalf("Unspooled = %+v, %v", un, err)
	}
	if err := s.MarkSpooled(ctx, "inv-1", true, false); err != nil {
		t.Fatal(err)
	}
	if un, _ := s.Unspooled(ctx, 10); len(un) != 1 {
		t.Fatalf("detail not spooled yet, listed %d", len(un))
	}
	if err := s.MarkSpooled(ctx, "inv-1", false, true); err != nil {
		t.Fatal(err)
	}
	if un, _ := s.Unspooled(ctx, 10); len(un) != 0 {
		t.Fatalf("all spooled, listed %d", len(un))
	}
	a2, err := s.Answer(ctx, "inv-1")
	if err != nil || !a2.VoteSpooled || !a2.DetailSpooled || !a2.Time.Equal(t0) {
		t.Fatalf("Answer = %+v, %v", a2, err)
	}
}

func testVoter(t *testing.T, s survey.Store) {
	ctx := context.Background()
	a := answer("qr-1", 9)
	a.Channel, a.Voter = survey.ChannelQR, "dev-1"
	if _, _, err := s.RecordAnswer(ctx, a, t0.Add(-time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	b := answer("qr-2", 10)
	b.Channel, b.Voter, b.Time = survey.ChannelQR, "dev-1", t0.Add(time.Minute)
	if _, _, err := s.RecordAnswer(ctx, b, b.Time.Add(-time.Hour), nil); !errors.Is(err, survey.ErrReplayed) {
		t.Fatalf("same device again: err = %v", err)
	}
	b.Voter = "dev-2"
	if _, isNew, err := s.RecordAnswer(ctx, b, b.Time.Add(-time.Hour), nil); err != nil || !isNew {
		t.Fatalf("another device: %v, %v", isNew, err)
	}
}

func testFollowUp(t *testing.T, s survey.Store) {
	ctx := context.Background()
	var ids []int64
	for i, site := range []string{"s1", "s2", "s1"} {
		a := answer(survey.NewID(), i)
		a.Site = site
		f := &survey.FollowUp{Org: "o1", Site: site, Counter: "c1", Score: i, Opened: t0, Due: t0.Add(time.Duration(i+1) * time.Hour), Responsible: "Мария"}
		if _, _, err := s.RecordAnswer(ctx, a, time.Time{}, f); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, f.ID)
	}
	if fs, _ := s.FollowUps(ctx, survey.FollowUpFilter{Site: "s1"}); len(fs) != 2 {
		t.Fatalf("site s1: %d follow-ups", len(fs))
	}
	over, err := s.FollowUps(ctx, survey.FollowUpFilter{Overdue: t0.Add(150 * time.Minute)})
	if err != nil || len(over) != 2 || over[0].ID != ids[0] {
		t.Fatalf("overdue = %+v, %v", over, err)
	}
	if err := s.MarkEscalated(ctx, ids[0], t0.Add(150*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if over, _ := s.FollowUps(ctx, survey.FollowUpFilter{Overdue: t0.Add(150 * time.Minute)}); len(over) != 1 {
		t.Fatalf("escalated one still overdue: %d", len(over))
	}
	f, err := s.CloseFollowUp(ctx, ids[1], "maria", "called back, exchange arranged", t0.Add(time.Hour))
	if err != nil || f.State != survey.FollowUpClosed || f.Outcome != "called back, exchange arranged" || !f.InTime() || f.ClosedBy != "maria" {
		t.Fatalf("CloseFollowUp = %+v, %v", f, err)
	}
	if _, err := s.CloseFollowUp(ctx, ids[1], "x", "again", t0.Add(2*time.Hour)); !errors.Is(err, survey.ErrClosed) {
		t.Fatalf("closing twice: err = %v", err)
	}
	if _, err := s.CloseFollowUp(ctx, 999, "x", "y", t0); !errors.Is(err, survey.ErrNotFound) {
		t.Fatalf("closing missing: err = %v", err)
	}
	if err := s.MarkNotified(ctx, ids[1], t0.Add(61*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.FollowUp(ctx, ids[1]); !f.Notified.Equal(t0.Add(61 * time.Minute)) {
		t.Fatalf("notified = %v", f.Notified)
	}
	if open, _ := s.FollowUps(ctx, survey.FollowUpFilter{State: survey.FollowUpOpen}); len(open) != 2 {
		t.Fatalf("open = %d", len(open))
	}
	if _, err := s.FollowUp(ctx, 999); !errors.Is(err, survey.ErrNotFound) {
		t.Fatalf("missing: err = %v", err)
	}
}

func testForget(t *testing.T, s survey.Store) {
	ctx := context.Background()
	if err := s.ReserveSend(ctx, "o1", "old", t0, t0.Add(-6*month)); err != nil {
		t.Fatal(err)
	}
	a := answer("inv-f", 2)
	f := &survey.FollowUp{Org: "o1", Site: "s1", Counter: "c1", Score: 2, Contact: "x@y.example", Opened: t0, Due: t0.Add(time.Hour)}
	if _, _, err := s.RecordAnswer(ctx, a, time.Time{}, f); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CloseFollowUp(ctx, f.ID, "m", "done", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	n, err := s.Forget(ctx, t0.Add(time.Second), t0.Add(2*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("Forget = %d, %v", n, err)
	}
	if got, _ := s.FollowUp(ctx, f.ID); got.Contact != "" || got.Outcome != "done" {
		t.Fatalf("after Forget: %+v", got)
	}
	// The send record is gone, so the address may be invited again.
	if err := s.ReserveSend(ctx, "o1", "old", t0.Add(time.Minute), t0.Add(-6*month)); err != nil {
		t.Fatalf("after Forget: %v", err)
	}
}
