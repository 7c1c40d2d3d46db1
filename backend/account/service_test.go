package account_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/account"
	"github.com/semko/semko/backend/account/sqlite"
)

func newService(t *testing.T, now func() time.Time) *account.Service {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	s, err := account.New(account.Options{Store: store, BcryptCost: bcrypt.MinCost, Now: now, SessionTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestValidation(t *testing.T) {
	s := newService(t, nil)
	ctx := context.Background()
	for name, a := range map[string]account.Account{
		"bad name":       {Name: "a b", Role: access.Viewer, Scope: access.Everything},
		"unknown role":   {Name: "x", Role: "boss", Scope: access.Everything},
		"empty scope":    {Name: "x", Role: access.Manager},
		"bad language":   {Name: "x", Role: access.Viewer, Scope: access.Everything, Lang: "de"},
		"script in name": {Name: "<script>", Role: access.Viewer, Scope: access.Everything},
	} {
		if err := s.Create(ctx, a, "long enough password"); !errors.Is(err, account.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if err := s.Create(ctx, account.Account{Name: "x", Role: access.Viewer, Scope: access.Everything}, "short"); !errors.Is(err, account.ErrInvalid) {
		t.Errorf("short password: %v", err)
	}
	// An admin's scope is everything, whatever was given.
	if err := s.Create(ctx, account.Account{Name: "root", Role: access.Admin}, "long enough password"); err != nil {
		t.Fatal(err)
	}
	if a, _, _ := s.Store().Account(ctx, "root"); !a.Scope.All {
		t.Errorf("admin scope %+v", a.Scope)
	}
}

// TestThrottlePerAddress: guessing many names from one address is
// throttled too, and another address is not affected; the window passes.
func TestThrottlePerAddress(t *testing.T) {
	now := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	s := newService(t, func() time.Time { return now })
	ctx := context.Background()
	if err := s.Create(ctx, account.Account{Name: "ana", Role: access.Viewer, Scope: access.Everything}, "long enough password"); err != nil {
		t.Fatal(err)
	}
	throttled := 0
	for i := range 40 {
		_, _, err := s.SignIn(ctx, "guess"+string(rune('a'+i%26))+string(rune('a'+i/26)), "x", "10.0.0.9:1234", "en")
		if errors.Is(err, account.ErrThrottled) {
			throttled++
		}
	}
	if throttled != 20 {
		t.Fatalf("%d of 40 guesses from one address throttled, want the 20 after the first 20", throttled)
	}
	if _, _, err := s.SignIn(ctx, "ana", "long enough password", "10.0.0.9:1", "en"); !errors.Is(err, account.ErrThrottled) {
		t.Fatalf("right password from the throttled address: %v", err)
	}
	if _, _, err := s.SignIn(ctx, "ana", "long enough password", "10.0.0.10:1", "en"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	now = now.Add(16 * time.Minute)
	if _, _, err := s.SignIn(ctx, "ana", "long enough password", "10.0.0.9:1", "en"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestSessionExpiry: a session stops working at its expiry, and a
// disabled account's sessions end at once.
func TestSessionExpiry(t *testing.T) {
	now := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	s := newService(t, func() time.Time { return now })
	ctx := context.Background()
	a := account.Account{Name: "ana", Role: access.Technician, Scope: access.Scope{Orgs: []string{"muni"}}}
	if err := s.Create(ctx, a, "long enough password"); err != nil {
		t.Fatal(err)
	}
	id, _, err := s.SignIn(ctx, "ana", "long enough password", "10.0.0.1:1", "bg")
	if err != nil {
		t.Fatal(err)
	}
	auth := s.SessionAuthenticator()
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: account.SessionCookie, Value: id})
	if p, ok, _ := auth.Authenticate(req); !ok || p.Account != "ana" || p.Lang != "bg" || !p.Scope.Allows("muni", "") {
		t.Fatalf("session principal %+v %v", p, ok)
	}
	now = now.Add(time.Hour)
	if _, ok, _ := auth.Authenticate(req); ok {
		t.Fatal("expired session still works")
	}
	now = now.Add(-30 * time.Minute)
	a.Disabled = true
	if err := s.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := auth.Authenticate(req); ok {
		t.Fatal("disabled account's session still works")
	}
}

// Two replicas on one store throttle together: guesses spread over both
// count once, so a guesser gains nothing by reaching another replica.
func TestThrottleSharedByReplicas(t *testing.T) {
	now := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var replicas [2]*account.Service
	for i := range replicas {
		replicas[i], err = account.New(account.Options{Store: store, BcryptCost: bcrypt.MinCost, Now: func() time.Time { return now }, SessionTTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if err := replicas[0].Create(ctx, account.Account{Name: "ana", Role: access.Viewer, Scope: access.Everything}, "long enough password"); err != nil {
		t.Fatal(err)
	}
	throttled := 0
	for i := range 10 {
		_, _, err := replicas[i%2].SignIn(ctx, "ana", "wrong", "10.0.0.7:1", "en")
		if errors.Is(err, account.ErrThrottled) {
			throttled++
		}
	}
	if throttled != 5 {
		t.Fatalf("%d of 10 wrong passwords over two replicas throttled, want the 5 after the first 5", throttled)
	}
	now = now.Add(16 * time.Minute)
	if _, _, err := replicas[1].SignIn(ctx, "ana", "long enough password", "10.0.0.7:1", "en"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}
