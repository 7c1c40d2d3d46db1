package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/semko/semko/backend/survey"
	"github.com/semko/semko/backend/survey/sqlite"
	"github.com/semko/semko/backend/survey/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) survey.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "survey.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestReopen: what was recorded survives a restart.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "survey.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unsubscribe(ctx, "h", storetestTime); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.ReserveSend(ctx, "o", "h", storetestTime, storetestTime); err != survey.ErrUnsubscribed {
		t.Fatalf("after reopen: err = %v", err)
	}
}

var storetestTime = mustTime("2026-12-01T10:00:00Z")
