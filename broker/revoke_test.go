package broker

import (
	"fmt"
	"testing"
	"time"

	"github.com/semko/semko/internal/testwait"
)

// TestChangedCredentialsEndSessions removes one device and rotates
// another's secret while both are connected: both sessions end, the rotated
// device connects again with its new secret only, and the untouched
// accounts keep their sessions.
func TestChangedCredentialsEndSessions(t *testing.T) {
	creds := testCredentials(t)
	b := startBroker(t, Options{Credentials: creds})
	removed := mustConnect(t, b.Addr(), dev1, dev1, dev1Secret)
	rotated := mustConnect(t, b.Addr(), dev2, dev2, dev2Secret)
	observer := mustConnect(t, b.Addr(), "app-1", observerUser, observerPw)
	if got := b.Stats().ClientsConnected; got != 3 {
		t.Fatalf("ClientsConnected = %d, want 3", got)
	}

	const newSecret = "rotated-secret-of-kp-0002-fedcba98"
	hash, err := HashSecret(newSecret)
	if err != nil {
		t.Fatal(err)
	}
	observerHash, ok := creds.lookup(observerUser)
	if !ok {
		t.Fatal("no observer account")
	}
	if err := creds.Replace([]Credential{
		{Username: dev2, Hash: hash, Role: RoleDevice},
		observerHash,
	}); err != nil {
		t.Fatal(err)
	}

	for name, c := range map[string]*client{"removed": removed, "rotated": rotated} {
		select {
		case <-c.lost:
		case <-time.After(waitLong):
			t.Fatalf("the %s device's session survived the change", name)
		}
	}
	testwait.For(t, "Revoked = 2", func() bool { return b.Stats().Revoked == 2 })
	if !observer.IsConnectionOpen() {
		t.Error("the unchanged observer account was disconnected")
	}
	if _, err := connect(t, b.Addr(), dev2, dev2, dev2Secret); err == nil {
		t.Error("the old secret still connects")
	}
	again := mustConnect(t, b.Addr(), dev2, dev2, newSecret)
	mustPublish(t, again, "semko/v1/devices/"+dev2+"/heartbeat", []byte(`{}`))

	// A change that leaves a session's credential as it was ends nothing.
	if err := creds.Replace([]Credential{
		{Username: dev2, Hash: hash, Role: RoleDevice},
		observerHash,
		{Username: dev1, Hash: hash, Role: RoleDevice},
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-again.lost:
		t.Fatal("a session whose credential did not change was ended")
	case <-time.After(200 * time.Millisecond):
	}
	if n := b.Stats().Revoked; n != 2 {
		t.Errorf("Revoked = %d, want 2", n)
	}
}

// An account other than a device may choose any client ID: the record of
// what each session authenticated with must not outlive the session.
func TestAuthenticatedSessionsForgottenAtDisconnect(t *testing.T) {
	b := startBroker(t, Options{})
	for i := range 20 {
		c := mustConnect(t, b.Addr(), fmt.Sprintf("app-%d", i), observerUser, observerPw)
		c.Disconnect(0)
	}
	testwait.For(t, "no client connected", func() bool { return b.Stats().ClientsConnected == 0 })
	n := 0
	b.authed.Range(func(_, _ any) bool { n++; return true })
	if n != 0 {
		t.Errorf("%d authenticated sessions still recorded after all disconnected", n)
	}
}
