package engine_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/fleet/live"
	"github.com/semko/semko/backend/survey"
	"github.com/semko/semko/backend/survey/engine"
	"github.com/semko/semko/backend/survey/internal/surveytest"
	"github.com/semko/semko/protocol"
)

const day = 24 * time.Hour

var tokRE = regexp.MustCompile(`/s/([A-Za-z0-9_-]+)`)

// scoreToken returns the signed token of score's button in an invitation.
func scoreToken(t *testing.T, env *surveytest.Env, text string, score int) survey.Token {
	t.Helper()
	m := tokRE.FindAllStringSubmatch(text, -1)
	if len(m) != 11 {
		t.Fatalf("%d score links in:\n%s", len(m), text)
	}
	tok, err := env.Engine.Signer().Decode(m[score][1], env.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestOncePerPeriod(t *testing.T) {
	env := surveytest.New(t, func(o *engine.Options) { o.PeriodByOrg = map[string]time.Duration{"o2": 30 * day} })
	ctx := context.Background()
	c := survey.Contact{Counter: "c1", Email: "Ana <ANA@example.org>", Lang: "ru"}
	if _, err := env.Engine.Invite(ctx, c); err != nil {
		t.Fatal(err)
	}
	env.Advance(31 * day)
	if _, err := env.Engine.Invite(ctx, c); !errors.Is(err, survey.ErrRecent) {
		t.Fatalf("a month later: err = %v, want ErrRecent", err)
	}
	// o2 asks every 30 days.
	if _, err := env.Engine.Invite(ctx, survey.Contact{Counter: "c3", Email: "ana@example.org"}); err != nil {
		t.Fatal(err)
	}
	env.Advance(31 * day)
	if _, err := env.Engine.Invite(ctx, survey.Contact{Counter: "c3", Email: "ana@example.org"}); err != nil {
		t.Fatalf("o2 after 31 days: %v", err)
	}
	env.Advance(5 * 30 * day) // 7 months after the first
	if _, err := env.Engine.Invite(ctx, c); err != nil {
		t.Fatalf("seven months later: %v", err)
	}
	_, _, mails, _, _ := env.Snapshot()
	if len(mails) != 4 || mails[0].To[0] != "ana@example.org" || !strings.Contains(mails[0].Text, "порекомендуете Община Тест") {
		t.Fatalf("mails: %d, first %+v", len(mails), mails[0])
	}
	// Nothing the store keeps names the address.
	for _, m := range mails {
		if strings.Contains(m.Text, "ana@") && !strings.Contains(m.Text, "?lang=") {
			t.Fatal("address in the mail text")
		}
	}
	if _, err := env.Engine.Invite(ctx, survey.Contact{Counter: "nope", Email: "a@b.example"}); !errors.Is(err, engine.ErrUnknown) {
		t.Fatalf("unknown counter: %v", err)
	}
	if _, err := env.Engine.Invite(ctx, survey.Contact{Counter: "c1"}); !errors.Is(err, engine.ErrNoChannel) {
		t.Fatalf("no address: %v", err)
	}
}

func TestAnswerOnceAndFollowUp(t *testing.T) {
	env := surveytest.New(t, nil)
	ctx := context.Background()
	inv, err := env.Engine.Invite(ctx, survey.Contact{Counter: "c1", Email: "ivan@example.org", Lang: "en"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, mails, _, _ := env.Snapshot()
	tok3 := scoreToken(t, env, mails[0].Text, 3)
	a, isNew, err := env.Engine.AnswerLink(ctx, tok3, tok3.Score)
	if err != nil || !isNew || a.Score != 3 || a.ID != inv.ID {
		t.Fatalf("answer = %+v, %v, %v", a, isNew, err)
	}
	tok10 := scoreToken(t, env, mails[0].Text, 10)
	if b, isNew, err := env.Engine.AnswerLink(ctx, tok10, tok10.Score); err != nil || isNew || b.Score != 3 {
		t.Fatalf("second click = %+v, %v, %v", b, isNew, err)
	}
	lines, votes, _, _, _ := env.Snapshot()
	if len(votes) != 1 {
		t.Fatalf("%d votes, want 1", len(votes))
	}
	v := votes[0]
	if v.Scale != protocol.ScaleNPS11 || v.Channel != "email" || v.Device != "kp-1" || v.Operator != "op-1" || v.Service != "permits" || v.Seq == 0 || v.Score != 3 {
		t.Fatalf("vote %+v", v)
	}
	var fu int
	for _, l := range lines {
		if strings.HasPrefix(string(l), "nps_followup,") && strings.Contains(string(l), "open=1i") {
			fu++
		}
	}
	if fu != 1 {
		t.Fatalf("%d follow-up points:\n%s", fu, lines)
	}

	// The deadline: three working hours in Sofia (Mon 10:00 local + 3h).
	fs, _ := env.Engine.FollowUps(ctx, survey.FollowUpFilter{})
	if len(fs) != 1 || !fs[0].Due.Equal(surveytest.T0.Add(3*time.Hour)) || fs[0].Responsible != "Мария" {
		t.Fatalf("follow-ups %+v", fs)
	}
	// Reasons with consent bring the address back from the link.
	if _, _, err := env.Engine.SetReasons(ctx, tok3, []string{"materials"}, "Brochure was outdated", true); err != nil {
		t.Fatal(err)
	}
	f, _ := env.Engine.FollowUp(ctx, fs[0].ID)
	if f.Contact != "ivan@example.org" || f.Comment != "Brochure was outdated" {
		t.Fatalf("follow-up after reasons %+v", f)
	}

	// Overdue: escalated once, through the alert manager.
	env.Advance(4 * time.Hour)
	env.Engine.Check(ctx)
	env.Engine.Check(ctx)
	_, _, _, raised, _ := env.Snapshot()
	if len(raised) != 1 || raised[0].Kind != engine.KindFollowUpOverdue || raised[0].Subject.Counter != "c1" ||
		raised[0].Details[alert.DetailResponsibleEmail] != "maria@o1.example" {
		t.Fatalf("raised %+v", raised)
	}
	f, err = env.Engine.Close(ctx, f.ID, "maria", "Called back, new brochure sent")
	if err != nil || f.InTime() {
		t.Fatalf("close = %+v, %v (closed late)", f, err)
	}
	_, _, _, _, resolved := env.Snapshot()
	if len(resolved) != 1 || resolved[0] != engine.KindFollowUpOverdue {
		t.Fatalf("resolved %v", resolved)
	}
	if _, err := env.Engine.Close(ctx, f.ID, "maria", ""); !errors.Is(err, survey.ErrInvalid) {
		t.Fatalf("empty outcome: %v", err)
	}
	st := engine.StatsOf([]survey.FollowUp{f}, env.Now())
	if st.Closed != 1 || st.ClosedInTime != 0 || st.InTimeShare != 0 {
		t.Fatalf("stats %+v", st)
	}
	if f, err = env.Engine.NotifyCustomer(ctx, f.ID, ""); err != nil || f.Notified.IsZero() {
		t.Fatalf("notify = %+v, %v", f, err)
	}
	_, _, mails, _, _ = env.Snapshot()
	if last := mails[len(mails)-1]; last.To[0] != "ivan@example.org" || !strings.Contains(last.Text, "new brochure sent") {
		t.Fatalf("reply %+v", last)
	}
}

func TestPromoterNoFollowUpAndPassiveOption(t *testing.T) {
	for _, passives := range []bool{false, true} {
		env := surveytest.New(t, func(o *engine.Options) { o.FollowPassives = passives })
		ctx := context.Background()
		for i, score := range []int{10, 8} {
			inv, err := env.Engine.Invite(ctx, survey.Contact{Counter: "c1", Email: string(rune('a'+i)) + "@example.org"})
			if err != nil {
				t.Fatal(err)
			}
			tok := survey.Token{Kind: survey.TokenAnswer, Ref: inv.ID, Score: score}
			if _, _, err := env.Engine.AnswerLink(ctx, tok, score); err != nil {
				t.Fatal(err)
			}
		}
		fs, _ := env.Engine.FollowUps(ctx, survey.FollowUpFilter{})
		want := map[bool]int{false: 0, true: 1}[passives]
		if len(fs) != want {
			t.Fatalf("follow passives %v: %d follow-ups, want %d", passives, len(fs), want)
		}
	}
}

func TestQRAnswers(t *testing.T) {
	env := surveytest.New(t, nil)
	ctx := context.Background()
	code := strings.TrimPrefix(env.Engine.CounterURL("c2"), "http://survey.test/q/")
	ctok, err := env.Engine.Signer().Decode(code, env.Now())
	if err != nil {
		t.Fatal(err)
	}
	scan := func() survey.Token {
		s, c, err := env.Engine.Scan(ctok)
		if err != nil || c.ID != "c2" {
			t.Fatalf("scan: %v", err)
		}
		tok, err := env.Engine.Signer().Decode(s, env.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	s1 := scan()
	if _, isNew, err := env.Engine.AnswerScan(ctx, s1, 9, "device-A"); err != nil || !isNew {
		t.Fatalf("first: %v %v", isNew, err)
	}
	// The same scan again: the first answer.
	if a, isNew, err := env.Engine.AnswerScan(ctx, s1, 0, "device-B"); err != nil || isNew || a.Score != 9 {
		t.Fatalf("same scan: %+v %v %v", a, isNew, err)
	}
	// A new scan from the same phone: refused.
	if _, _, err := env.Engine.AnswerScan(ctx, scan(), 0, "device-A"); !errors.Is(err, survey.ErrReplayed) {
		t.Fatalf("same device: %v", err)
	}
	// Another phone: counted.
	if _, isNew, err := env.Engine.AnswerScan(ctx, scan(), 2, "device-B"); err != nil || !isNew {
		t.Fatalf("other device: %v %v", isNew, err)
	}
	// A scan token expires.
	s4 := scan()
	env.Advance(31 * time.Minute)
	if _, err := env.Engine.Signer().Decode(env.Engine.Signer().Encode(s4), env.Now()); !errors.Is(err, survey.ErrExpired) {
		t.Fatalf("old scan: %v", err)
	}
	if _, _, err := env.Engine.AnswerScan(ctx, s1, 11, ""); !errors.Is(err, engine.ErrNoScore) {
		t.Fatalf("score 11: %v", err)
	}
	// c2 has no keypad: the votes go to the spool as vote points.
	lines, votes, _, _, _ := env.Snapshot()
	var n int
	for _, l := range lines {
		if strings.HasPrefix(string(l), "vote,channel=qr,counter=c2,") && strings.Contains(string(l), "scale=nps11") {
			n++
		}
	}
	if n != 2 || len(votes) != 0 {
		t.Fatalf("%d qr vote lines, %d intake votes:\n%s", n, len(votes), lines)
	}
}

func TestSpoolRetry(t *testing.T) {
	env := surveytest.New(t, nil)
	ctx := context.Background()
	inv, err := env.Engine.Invite(ctx, survey.Contact{Counter: "c1", Email: "x@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	env.FailSpool = true
	tok := survey.Token{Kind: survey.TokenAnswer, Ref: inv.ID, Score: 7}
	if _, _, err := env.Engine.AnswerLink(ctx, tok, 7); err != nil {
		t.Fatalf("answer with the spool full: %v (the answer is kept and spooled later)", err)
	}
	if _, _, err := env.Engine.SetReasons(ctx, tok, []string{"speed"}, "", false); err != nil {
		t.Fatal(err)
	}
	env.FailSpool = false
	env.Engine.Check(ctx)
	env.Engine.Check(ctx)
	lines, votes, _, _, _ := env.Snapshot()
	if len(votes) != 1 {
		t.Fatalf("%d votes after retry, want 1", len(votes))
	}
	var reasons int
	for _, l := range lines {
		if strings.HasPrefix(string(l), "nps_reason,") {
			reasons++
		}
	}
	if reasons != 1 {
		t.Fatalf("%d reason points, want 1", reasons)
	}
}

func TestUnsubscribe(t *testing.T) {
	env := surveytest.New(t, nil)
	ctx := context.Background()
	if _, err := env.Engine.Invite(ctx, survey.Contact{Counter: "c1", Phone: "+359 88 123 4567"}); !errors.Is(err, engine.ErrNoChannel) {
		t.Fatalf("phone without SMS: %v", err)
	}
	if _, err := env.Engine.Invite(ctx, survey.Contact{Counter: "c1", Email: "u@example.org"}); err != nil {
		t.Fatal(err)
	}
	_, _, mails, _, _ := env.Snapshot()
	m := regexp.MustCompile(`/u/([A-Za-z0-9_-]+)`).FindStringSubmatch(mails[0].Text)
	tok, err := env.Engine.Signer().Decode(m[1], env.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Engine.Unsubscribe(ctx, tok); err != nil {
		t.Fatal(err)
	}
	env.Advance(3 * 366 * day)
	if _, err := env.Engine.Invite(ctx, survey.Contact{Counter: "c3", Email: "U@example.org"}); !errors.Is(err, survey.ErrUnsubscribed) {
		t.Fatalf("three years later, elsewhere: %v", err)
	}
}

// TestQRAnswerTiedToTheMoment: a QR answer carries the operator and service
// of the activation in force when the code was scanned, not of a later
// service at the same counter, and the counter's defaults before any.
func TestQRAnswerTiedToTheMoment(t *testing.T) {
	serving := live.NewServing()
	env := surveytest.New(t, func(o *engine.Options) { o.Serving = serving.At })
	ctx := context.Background()
	ctok, err := env.Engine.Signer().Decode(strings.TrimPrefix(env.Engine.CounterURL("c1"), "http://survey.test/q/"), env.Now())
	if err != nil {
		t.Fatal(err)
	}
	scan := func() survey.Token {
		t.Helper()
		s, _, err := env.Engine.Scan(ctok)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := env.Engine.Signer().Decode(s, env.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	// Before any activation: the counter's defaults.
	a, _, err := env.Engine.AnswerScan(ctx, scan(), 8, "phone-0")
	if err != nil || a.Operator != "op-1" || a.Service != "permits" {
		t.Fatalf("no activation known: %+v %v, want op-1/permits", a, err)
	}

	serving.Record("kp-1", "op-2", "taxes", env.Now().Add(-5*time.Minute))
	s := scan()
	env.Advance(time.Minute)
	serving.Record("kp-1", "op-3", "permits", env.Now()) // the next customer
	env.Advance(time.Minute)
	a, _, err = env.Engine.AnswerScan(ctx, s, 4, "phone-1")
	if err != nil || a.Operator != "op-2" || a.Service != "taxes" {
		t.Fatalf("answer after the next activation: %+v %v, want op-2/taxes of the scan's moment", a, err)
	}
	a, _, err = env.Engine.AnswerScan(ctx, scan(), 10, "phone-2")
	if err != nil || a.Operator != "op-3" {
		t.Fatalf("a scan after the next activation: %+v %v, want op-3", a, err)
	}
}
