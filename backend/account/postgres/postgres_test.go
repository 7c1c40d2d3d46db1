package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/semko/semko/backend/access"

	"github.com/semko/semko/backend/account"
	"github.com/semko/semko/backend/account/storetest"
	"github.com/semko/semko/internal/pglocal"
)

func TestMain(m *testing.M) { pglocal.Main(m) }

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) account.Store {
		s, err := Open(context.Background(), pglocal.SharedDB(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// Two replicas on one database: a session made through one is valid
// through the other, and ends there when the password changes.
func TestReplicasShareSessions(t *testing.T) {
	ctx := context.Background()
	dsn := pglocal.SharedDB(t)
	var stores [2]*Store
	for i := range stores {
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	now := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	if err := stores[0].CreateAccount(ctx, account.Account{Name: "ada", Role: access.Admin, Scope: access.Everything, Created: now}, []byte("h")); err != nil {
		t.Fatal(err)
	}
	if err := stores[0].CreateSession(ctx, account.Session{IDHash: "s1", Account: "ada", Created: now, Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if se, err := stores[1].Session(ctx, "s1", now); err != nil || se.Account != "ada" {
		t.Fatalf("session through the other replica: %+v, %v", se, err)
	}
	if err := stores[1].SetPassword(ctx, "ada", []byte("h2")); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[0].Session(ctx, "s1", now); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("session survived a password change made on the other replica: %v", err)
	}
}
