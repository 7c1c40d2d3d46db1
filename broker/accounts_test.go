package broker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/semko/semko/internal/testwait"
	"github.com/semko/semko/protocol"
)

// Tests of what non-device accounts may do with sessions and subscriptions
// (issue 15, findings 2 to 5 and 7).

// An observer cannot join the backend's shared subscription: with the
// backend relaying from a standalone broker, each vote the observer's
// member of the group received would be one the backend never saw.
func TestObserverCannotJoinTheBackendsGroup(t *testing.T) {
	b := startBroker(t, Options{}) // relay, as cmd/semko-broker runs
	shared := "$share/semko/" + protocol.UpstreamFilter(protocol.KindVote)
	backend := mustConnect(t, b.Addr(), "backend-1", backendUser, backendPass)
	if code, _ := subscribe(t, backend, shared); code == 0x80 {
		t.Fatal("the backend's shared subscription was refused")
	}
	obs := mustConnect(t, b.Addr(), "app-1", observerUser, observerPw)
	for _, filter := range []string{shared, protocol.UpstreamFilter(protocol.KindVote), protocol.Root + "/#"} {
		if code, _ := subscribe(t, obs, filter); code != 0x80 {
			t.Errorf("observer subscribed %q: SUBACK %#x, want 0x80", filter, code)
		}
	}

	got := make(chan paho.Message, 100)
	backend.AddRoute(protocol.UpstreamFilter(protocol.KindVote), func(_ paho.Client, m paho.Message) { got <- m })
	dev := mustConnect(t, b.Addr(), dev1, dev1, dev1Secret)
	const votes = 20
	for seq := uint64(1); seq <= votes; seq++ {
		mustPublish(t, dev, protocol.DeviceTopic(dev1, protocol.KindVote), votePayload(t, dev1, seq))
	}
	for i := range votes {
		select {
		case <-got:
		case <-time.After(waitLong):
			t.Fatalf("the backend received %d of %d votes", i, votes)
		}
	}
}

// A client id belongs to one account: nobody else can take over the
// backend's persistent session and the votes queued in it.
func TestClientIDBelongsToItsAccount(t *testing.T) {
	b := startBroker(t, Options{DataDir: t.TempDir()})
	const backendID = "backend-1"
	backend := mustConnect(t, b.Addr(), backendID, backendUser, backendPass)
	subscribe(t, backend, protocol.UpstreamFilter(protocol.KindVote))
	backend.Disconnect(100) // a backend restarting: its session waits, collecting votes

	dev := mustConnect(t, b.Addr(), dev1, dev1, dev1Secret)
	const queued = 10
	for seq := uint64(1); seq <= queued; seq++ {
		mustPublish(t, dev, protocol.DeviceTopic(dev1, protocol.KindVote), votePayload(t, dev1, seq))
	}

	for _, tt := range []struct{ name, clientID, user, secret string }{
		{"observer as the backend's session", backendID, observerUser, observerPw},
		{"observer as the backend's account name", backendUser, observerUser, observerPw},
		{"device as the backend's session", backendID, dev1, dev1Secret},
		{"observer as a device", dev2, observerUser, observerPw},
		{"backend as a device", dev2, backendUser, backendPass},
		{"observer with a device's id and a suffix", dev2 + "-x", observerUser, observerPw},
		{"observer with an id nobody owns", "phone-7", observerUser, observerPw},
		{"observer with a lookalike prefix", observerUser + "x-1", observerUser, observerPw},
		{"observer with an overlong id", observerUser + "-" + strings.Repeat("x", 300), observerUser, observerPw},
	} {
		before := b.Stats().AuthFailures
		if c, err := connect(t, b.Addr(), tt.clientID, tt.user, tt.secret); err == nil {
			c.Disconnect(0)
			t.Errorf("%s: connected", tt.name)
		}
		if got := b.Stats().AuthFailures - before; got != 1 {
			t.Errorf("%s: AuthFailures grew by %d, want 1", tt.name, got)
		}
	}
	for _, id := range []string{observerUser, observerUser + "-1", observerUser + "-tablet-7"} {
		c := mustConnect(t, b.Addr(), id, observerUser, observerPw)
		c.Disconnect(0)
	}

	// The backend comes back to all its votes.
	ch := make(chan paho.Message, 2*queued)
	mustConnect(t, b.Addr(), backendID, backendUser, backendPass, func(o *paho.ClientOptions) {
		o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { ch <- m })
	})
	for i := range queued {
		select {
		case <-ch:
		case <-time.After(waitLong):
			t.Fatalf("the backend found %d of %d queued votes", i, queued)
		}
	}
}

func TestCredentialsOwner(t *testing.T) {
	creds := testCredentials(t)
	for id, want := range map[string]string{
		dev1: dev1, dev1 + "-2": dev1, "backend": "backend", "backend-1": "backend", "backend-a-b": "backend",
		"app": "app", "app-": "app", "appx": "", "kp": "", "": "", "-": "", "backend/1": "",
	} {
		cr, ok := creds.owner(id)
		if ok != (want != "") || cr.Username != want {
			t.Errorf("owner(%q) = %q, %v; want %q", id, cr.Username, ok, want)
		}
	}
	// The longest owner wins, so an account named "semko" cannot use the
	// ids of an account named "semko-backend".
	h, err := HashSecret("x")
	if err != nil {
		t.Fatal(err)
	}
	two, err := NewCredentials([]Credential{{Username: "semko", Hash: h, Role: RoleObserver}, {Username: "semko-backend", Hash: h, Role: RoleBackend}})
	if err != nil {
		t.Fatal(err)
	}
	if cr, _ := two.owner("semko-backend-2"); cr.Username != "semko-backend" {
		t.Errorf("semko-backend-2 owned by %q", cr.Username)
	}
	if cr, _ := two.owner("semko-app"); cr.Username != "semko" {
		t.Errorf("semko-app owned by %q", cr.Username)
	}
}

// An observer's session ends with its connection whatever it asks for, its
// subscriptions are bounded, and so are an account's sessions.
func TestSessionsAndSubscriptionsBounded(t *testing.T) {
	b := startBroker(t, Options{DataDir: t.TempDir(), MaxSessionsPerAccount: 3, MaxSubscriptions: 4})

	// connect asks for a persistent session; the observer gets a clean one.
	obs := mustConnect(t, b.Addr(), "app-1", observerUser, observerPw)
	for i := range 4 {
		if code, _ := subscribe(t, obs, protocol.AlertFilter(fmt.Sprintf("org-%d", i), "")); code == 0x80 {
			t.Fatalf("subscription %d of 4 refused", i+1)
		}
	}
	denied := b.Stats().ACLDenied
	if code, _ := subscribe(t, obs, protocol.AlertFilter("org-9", "")); code != 0x80 {
		t.Errorf("a fifth subscription: SUBACK %#x, want 0x80", code)
	}
	if got := b.Stats().ACLDenied - denied; got != 1 {
		t.Errorf("ACLDenied grew by %d, want 1", got)
	}
	if code, _ := subscribe(t, obs, protocol.AlertFilter("org-0", "")); code == 0x80 {
		t.Error("subscribing a filter held already was refused")
	}
	obs.Disconnect(100)
	testwait.For(t, "the observer's session to end with its connection", func() bool {
		_, ok := b.server.Clients.Get("app-1")
		return !ok
	})
	if n := len(b.server.Topics.Subscribers(protocol.AlertTopic("org-0", "site-1", "offline")).Subscriptions); n != 0 {
		t.Errorf("the observer's subscriptions outlived its session: %d", n)
	}

	// Three persistent backend sessions, connected or not; a fourth is
	// refused; one of the three may come back.
	for i := 1; i <= 3; i++ {
		mustConnect(t, b.Addr(), fmt.Sprintf("backend-%d", i), backendUser, backendPass).Disconnect(100)
	}
	before := b.Stats().AuthFailures
	if c, err := connect(t, b.Addr(), "backend-4", backendUser, backendPass); err == nil {
		c.Disconnect(0)
		t.Error("a fourth session of the backend account was let in")
	}
	if got := b.Stats().AuthFailures - before; got != 1 {
		t.Errorf("AuthFailures grew by %d, want 1", got)
	}
	mustConnect(t, b.Addr(), "backend-2", backendUser, backendPass)
}

// Abandoned observer sessions cost a device nothing: with 1,000 of them
// the broker holds no session of theirs, and 100 votes are acknowledged as
// fast as with none (the figure is logged; no timed assertion). Before,
// each was a persistent session on semko/v1/# storing a synced copy of
// every vote ahead of the device's PUBACK: 23.4 s for 100 votes.
func TestAbandonedObserversCostDevicesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 connections")
	}
	b := startBroker(t, Options{DataDir: t.TempDir(), Intake: newDrainingIntake(t), MaxSessionsPerAccount: -1})
	dev := mustConnect(t, b.Addr(), dev1, dev1, dev1Secret)
	topic := protocol.DeviceTopic(dev1, protocol.KindVote)
	seq := uint64(0)
	votes := func() time.Duration {
		start := time.Now()
		for range 100 {
			seq++
			mustPublish(t, dev, topic, votePayload(t, dev1, seq))
		}
		return time.Since(start)
	}
	alone := votes()

	const observers = 1000
	for i := range observers {
		c := mustConnect(t, b.Addr(), fmt.Sprintf("app-%d", i), observerUser, observerPw)
		for _, f := range []string{protocol.Root + "/#", protocol.AlertFilter("", "")} {
			c.Subscribe(f, 1, nil).WaitTimeout(waitLong)
		}
		c.Disconnect(0) // abandoned: never comes back
	}
	testwait.For(t, "the observers' sessions to end", func() bool {
		for _, cl := range b.server.Clients.GetAll() {
			if string(cl.Properties.Username) == observerUser {
				return false
			}
		}
		return true
	})
	if s := b.server.Topics.Subscribers(topic); len(s.Subscriptions)+len(s.Shared) != 0 {
		t.Fatalf("subscribers to a device's votes: %v", s.Subscriptions)
	}
	after := votes()
	t.Logf("100 votes: %v with no observers, %v after %d abandoned observer sessions", alone, after, observers)
}

// newDrainingIntake accepts everything and keeps nothing.
func newDrainingIntake(t *testing.T) Intake {
	t.Helper()
	return IntakeFunc(func(_ context.Context, _ Message) error { return nil })
}

// A reconnect does not buy a device a fresh burst.
func TestRateLimitSurvivesReconnect(t *testing.T) {
	b := startBroker(t, Options{PublishRate: 5, PublishBurst: 5})
	topic := protocol.DeviceTopic(dev1, protocol.KindVote)
	seq := uint64(0)
	for round := range 3 {
		// A keypad's clean session: gone from the broker once its
		// disconnect has been handled.
		dev := mustConnect(t, b.Addr(), dev1, dev1, dev1Secret, func(o *paho.ClientOptions) { o.SetCleanSession(true) })
		before := b.Stats().RateDelayed
		for range 5 {
			seq++
			mustPublish(t, dev, topic, votePayload(t, dev1, seq))
		}
		delayed := b.Stats().RateDelayed - before
		switch {
		case round == 0 && delayed != 0:
			t.Fatalf("the first burst was slowed: %d delayed", delayed)
		case round > 0 && delayed == 0:
			t.Fatalf("reconnect %d: a fresh burst of 5 went through undelayed", round)
		}
		dev.Disconnect(0)
		testwait.For(t, "the device to go", func() bool { _, ok := b.server.Clients.Get(dev1); return !ok })
	}
}

// A will on a kind never retained leaves nothing retained behind.
func TestWillDoesNotRetainAVote(t *testing.T) {
	in := newRecordingIntake()
	b := startBroker(t, Options{Intake: in})
	topic := protocol.DeviceTopic(dev1, protocol.KindVote)
	backend := mustConnect(t, b.Addr(), "backend-1", backendUser, backendPass)
	_, ch := subscribe(t, backend, protocol.UpstreamFilter(protocol.KindVote))
	dev := mustConnect(t, b.Addr(), dev1, dev1, dev1Secret, withWill(topic, votePayload(t, dev1, 1)))
	dev.cut()
	if m := receive(t, ch); m.Topic() != topic {
		t.Fatalf("received %s", m.Topic())
	}
	in.next(t)
	if _, ok := b.server.Topics.Retained.Get(topic); ok {
		t.Fatal("the will left a retained vote")
	}
	late := mustConnect(t, b.Addr(), "backend-2", backendUser, backendPass)
	_, lateCh := subscribe(t, late, protocol.UpstreamFilter(protocol.KindVote))
	select {
	case m := <-lateCh:
		t.Fatalf("a new subscriber was replayed %s (retained %v)", m.Topic(), m.Retained())
	case <-time.After(waitShort):
	}
}

// FuzzOwner: whatever the client id, its owner is the account named so or
// one whose name and a '-' begin it, and no other account of the set would
// be a longer such match.
func FuzzOwner(f *testing.F) {
	for _, s := range []string{dev1, dev1 + "-x", "backend", "backend-1", "app-", "-", "", "app--x", strings.Repeat("a-", 200)} {
		f.Add(s)
	}
	creds := testCredentials(f)
	names := []string{dev1, dev2, backendUser, observerUser}
	f.Fuzz(func(t *testing.T, id string) {
		cr, ok := creds.owner(id)
		longest := ""
		for _, n := range names {
			if (id == n || strings.HasPrefix(id, n+"-")) && len(n) > len(longest) {
				longest = n
			}
		}
		if len(id) > maxClientIDLen {
			longest = ""
		}
		if ok != (longest != "") || cr.Username != longest {
			t.Fatalf("owner(%q) = %q, %v; want %q", id, cr.Username, ok, longest)
		}
	})
}
