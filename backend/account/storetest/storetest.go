// Package storetest checks that an account.Store behaves as the account
// service expects; every implementation runs it in its tests.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/account"
)

// Run exercises a fresh store from open.
func Run(t *testing.T, open func(t *testing.T) account.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 5, 5, 0, 0, 0, time.UTC)
	s := open(t)

	m := account.Account{Name: "mara", Role: access.Manager, Scope: access.Scope{Orgs: []string{"muni"}, Sites: []string{"bank-centre"}}, Lang: "bg", Created: t0}
	if err := s.CreateAccount(ctx, m, []byte("hash1")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(ctx, m, []byte("x")); !errors.Is(err, account.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	got, hash, err := s.Account(ctx, "mara")
	if err != nil || string(hash) != "hash1" || got.Role != access.Manager || got.Lang != "bg" ||
		len(got.Scope.Orgs) != 1 || got.Scope.Sites[0] != "bank-centre" || !got.Created.Equal(t0) {
		t.Fatalf("account = %+v %q %v", got, hash, err)
	}
	if _, _, err := s.Account(ctx, "nobody"); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("unknown account: %v", err)
	}
	got.Role, got.Scope, got.Disabled = access.Viewer, access.Everything, true
	if err := s.UpdateAccount(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got, _, _ = s.Account(ctx, "mara"); got.Role != access.Viewer || !got.Scope.All || !got.Disabled {
		t.Fatalf("update not kept: %+v", got)
	}
	if err := s.UpdateAccount(ctx, account.Account{Name: "nobody"}); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("update unknown: %v", err)
	}
	if err := s.CreateAccount(ctx, account.Account{Name: "ada", Role: access.Admin, Scope: access.Everything, Created: t0}, []byte("h")); err != nil {
		t.Fatal(err)
	}
	if list, err := s.Accounts(ctx); err != nil || len(list) != 2 || list[0].Name != "ada" {
		t.Fatalf("accounts = %+v %v", list, err)
	}

	// Sessions: found while unexpired, gone on delete and on password change.
	for _, se := range []account.Session{
		{IDHash: "s1", Account: "mara", Created: t0, Expires: t0.Add(time.Hour), Addr: "10.0.0.1", Lang: "bg"},
		{IDHash: "s2", Account: "mara", Created: t0, Expires: t0.Add(2 * time.Hour)},
		{IDHash: "s3", Account: "ada", Created: t0, Expires: t0.Add(time.Minute)},
	} {
		if err := s.CreateSession(ctx, se); err != nil {
			t.Fatal(err)
		}
	}
	if se, err := s.Session(ctx, "s1", t0); err != nil || se.Account != "mara" || se.Addr != "10.0.0.1" || !se.Expires.Equal(t0.Add(time.Hour)) {
		t.Fatalf("session = %+v %v", se, err)
	}
	if _, err := s.Session(ctx, "s3", t0.Add(time.Minute)); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("expired session found: %v", err)
	}
	if n, err := s.PurgeSessions(ctx, t0.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("purge = %d %v", n, err)
	}
	if err := s.DeleteSession(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, "s1", t0); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("deleted session found: %v", err)
	}
	if err := s.SetPassword(ctx, "mara", []byte("hash2")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, "s2", t0); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("session survived a password change: %v", err)
	}
	if _, hash, _ := s.Account(ctx, "mara"); string(hash) != "hash2" {
		t.Fatalf("password not changed: %q", hash)
	}
	if err := s.SetPassword(ctx, "nobody", []byte("x")); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("password of unknown: %v", err)
	}
	if err := s.CreateSession(ctx, account.Session{IDHash: "s4", Account: "ada", Expires: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSessions(ctx, "ada"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, "s4", t0); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("session survived sign-out everywhere: %v", err)
	}

	// Tokens.
	tok := account.Token{ID: "t1", Account: "mara", Name: "queue system", Hash: "th1", Created: t0}
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if got, err := s.TokenByHash(ctx, "th1"); err != nil || got.ID != "t1" || got.Name != "queue system" || !got.LastUsed.IsZero() {
		t.Fatalf("token = %+v %v", got, err)
	}
	if err := s.TouchToken(ctx, "t1", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if list, err := s.Tokens(ctx, "mara"); err != nil || len(list) != 1 || !list[0].LastUsed.Equal(t0.Add(time.Minute)) {
		t.Fatalf("tokens = %+v %v", list, err)
	}
	if err := s.DeleteToken(ctx, "ada", "t1"); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("another account revoked a token: %v", err)
	}
	if err := s.DeleteToken(ctx, "mara", "t1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TokenByHash(ctx, "th1"); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("revoked token found: %v", err)
	}

	// Audit: newest first, limited.
	for i, action := range []string{"account.create", "alert.ack", "device.add"} {
		if err := s.AddAudit(ctx, account.Entry{Time: t0.Add(time.Duration(i) * time.Second), Actor: "ada", Addr: "127.0.0.1",
			Action: action, Target: "x", Details: "<b>"}); err != nil {
			t.Fatal(err)
		}
	}
	log, err := s.Audit(ctx, 2)
	if err != nil || len(log) != 2 || log[0].Action != "device.add" || log[1].Action != "alert.ack" || log[0].Details != "<b>" ||
		!log[0].Time.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("audit = %+v %v", log, err)
	}

	// Failed sign-ins: counted per key from a time on, cleared, purged.
	for i := range 3 {
		if err := s.AddFailure(ctx, t0.Add(time.Duration(i)*time.Minute), "acct:mara", "addr:10.0.0.1"); err != nil {
			t.Fatal(err)
		}
	}
	count := func(key string, since time.Time) int {
		t.Helper()
		n, err := s.FailuresSince(ctx, key, since)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if a, b, c := count("acct:mara", t0), count("acct:mara", t0.Add(time.Minute)), count("acct:ada", t0); a != 3 || b != 2 || c != 0 {
		t.Fatalf("failures since t0, t0+1m, of another: %d %d %d, want 3 2 0", a, b, c)
	}
	if err := s.ClearFailures(ctx, "acct:mara"); err != nil {
		t.Fatal(err)
	}
	if n := count("acct:mara", t0); n != 0 || count("addr:10.0.0.1", t0) != 3 {
		t.Fatalf("after clearing the account's: %d left, address %d", n, count("addr:10.0.0.1", t0))
	}
	if n, err := s.PurgeFailures(ctx, t0.Add(2*time.Minute)); err != nil || n != 2 {
		t.Fatalf("purge before t0+2m: %d %v, want 2", n, err)
	}
	if n := count("addr:10.0.0.1", t0); n != 1 {
		t.Fatalf("after purge: %d, want 1", n)
	}
}
