package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/semko/semko/backend/survey"
	"github.com/semko/semko/backend/survey/postgres"
	"github.com/semko/semko/backend/survey/storetest"
	"github.com/semko/semko/internal/pglocal"
)

func TestMain(m *testing.M) { pglocal.Main(m) }

func open(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) survey.Store { return open(t, pglocal.SharedDB(t)) })
}

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// TestReplicas: two replicas, each with its own pool on one database, keep
// the rules the single SQLite connection kept: one reservation per address,
// one answer per id, one answer per voter and counter.
func TestReplicas(t *testing.T) {
	ctx := context.Background()
	dsn := pglocal.SharedDB(t)
	stores := []*postgres.Store{open(t, dsn), open(t, dsn)}

	var wg sync.WaitGroup
	var mu sync.Mutex
	reserved, recorded, replayed := 0, 0, 0
	for i := range 16 {
		s := stores[i%2]
		wg.Go(func() {
			rerr := s.ReserveSend(ctx, "o1", "h1", t0, t0.Add(-time.Hour))
			if rerr != nil && !errors.Is(rerr, survey.ErrRecent) {
				t.Errorf("reserve: %v", rerr)
			}
			a := survey.Answer{ID: "qr-same", Org: "o1", Counter: "c1", Channel: survey.ChannelQR, Score: i % 11, Time: t0}
			_, isNew, err := s.RecordAnswer(ctx, a, time.Time{}, &survey.FollowUp{Org: "o1", Counter: "c1", Opened: t0, Due: t0})
			if err != nil {
				t.Errorf("record: %v", err)
			}
			// Different ids, one voter: the second and later are replays.
			v := survey.Answer{ID: survey.NewID(), Org: "o1", Counter: "c1", Channel: survey.ChannelQR, Score: 5, Time: t0, Voter: "dev-1"}
			_, _, verr := s.RecordAnswer(ctx, v, t0.Add(-time.Hour), nil)
			if verr != nil && !errors.Is(verr, survey.ErrReplayed) {
				t.Errorf("voter: %v", verr)
			}
			mu.Lock()
			defer mu.Unlock()
			if rerr == nil {
				reserved++
			}
			if isNew {
				recorded++
			}
			if errors.Is(verr, survey.ErrReplayed) {
				replayed++
			}
		})
	}
	wg.Wait()
	if reserved != 1 || recorded != 1 || replayed != 15 {
		t.Fatalf("reserved %d, recorded %d, replayed %d; want 1, 1, 15", reserved, recorded, replayed)
	}
	if fs, err := stores[0].FollowUps(ctx, survey.FollowUpFilter{}); err != nil || len(fs) != 1 {
		t.Fatalf("follow-ups %d, %v; want 1", len(fs), err)
	}
}

// TestReopen: what was recorded survives closing every connection.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	dsn := pglocal.SharedDB(t)
	s := open(t, dsn)
	if err := s.Unsubscribe(ctx, "h", t0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dsn)
	if err := s.ReserveSend(ctx, "o", "h", t0, t0); !errors.Is(err, survey.ErrUnsubscribed) {
		t.Fatalf("after reopen: err = %v", err)
	}
}

// TestServerKilled: answers committed before PostgreSQL is SIGKILLed are
// there after it restarts, and the same store, without reopening, records
// the next one (its pool replaces the dead connections).
func TestServerKilled(t *testing.T) {
	ctx := context.Background()
	srv := pglocal.StartForTest(t)
	s := open(t, srv.CreateDB(t))
	a := survey.Answer{ID: "before", Org: "o1", Counter: "c1", Channel: survey.ChannelEmail, Score: 4, Time: t0}
	if _, _, err := s.RecordAnswer(ctx, a, time.Time{}, &survey.FollowUp{Org: "o1", Counter: "c1", Opened: t0, Due: t0}); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	b := a
	b.ID, b.Time = "after", t0.Add(time.Minute)
	got, isNew, err := s.RecordAnswer(ctx, b, time.Time{}, nil)
	if err != nil || !isNew {
		t.Fatalf("after the restart: new=%v, %v", isNew, err)
	}
	old, err := s.Answer(ctx, "before")
	if err != nil || old.Score != 4 || old.Seq >= got.Seq {
		t.Fatalf("answer from before the kill: %+v, %v (seq after: %d)", old, err, got.Seq)
	}
	if fs, err := s.FollowUps(ctx, survey.FollowUpFilter{}); err != nil || len(fs) != 1 || fs[0].Answer != "before" {
		t.Fatalf("follow-ups after the kill: %+v, %v", fs, err)
	}
}
