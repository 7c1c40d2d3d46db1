package fleetdb_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/semko/semko/backend/fleet/fleetdb"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/internal/pglocal"
	"github.com/semko/semko/internal/testwait"
)

// replica is one backend's handle on the shared fleet, watching it.
type replica struct {
	db    *fleetdb.DB
	mu    sync.Mutex
	snaps []*registry.Registry
}

func (r *replica) changes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.snaps)
}

func (r *replica) has(dev string) bool {
	_, ok := r.db.Current().Device(dev)
	return ok
}

// openReplica opens dsn and runs Watch until the test ends.
func openReplica(t *testing.T, dsn string, poll time.Duration) *replica {
	t.Helper()
	r := &replica{}
	db, err := fleetdb.Open(context.Background(), fleetdb.Options{
		DSN: dsn, HashSecret: broker.HashSecret, PollEvery: poll,
		OnChange: func(reg *registry.Registry) { r.mu.Lock(); r.snaps = append(r.snaps, reg); r.mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	r.db = db
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- db.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch: %v", err)
		}
		db.Close()
	})
	return r
}

// A change committed through one replica reaches the other's snapshot and
// OnChange once; its own notice does not publish it a second time.
func TestReplicaSeesOthersChange(t *testing.T) {
	ctx := context.Background()
	dsn := pglocal.SharedDB(t)
	a := openReplica(t, dsn, time.Minute)
	b := openReplica(t, dsn, time.Minute)
	// Both listen before the first change (Watch reloads on connecting, so
	// a change made earlier is not lost either, but then it would not
	// prove the notice).
	testwait.For(t, "both replicas listening", func() bool { return a.db.Listening() && b.db.Listening() })

	if _, err := a.db.AddDevice(ctx, fleetdb.NewDevice{ID: "kp-a"}); err != nil {
		t.Fatal(err)
	}
	took := testwait.Within(t, 30*time.Second, "replica b sees kp-a", func() bool { return b.has("kp-a") && b.changes() == 1 })
	t.Logf("another replica's change reached this one's snapshot in %v", took)
	// b changes next; once a sees it, a has also handled its own notice
	// (notices arrive in commit order on one connection).
	if _, err := b.db.AddDevice(ctx, fleetdb.NewDevice{ID: "kp-b"}); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "replica a sees kp-b", func() bool { return a.has("kp-b") })
	if got := a.changes(); got != 2 {
		t.Errorf("replica a published %d snapshots, want 2 (its change, then b's)", got)
	}
	if got := b.changes(); got != 2 {
		t.Errorf("replica b published %d snapshots, want 2", got)
	}
	if a.db.Version() != b.db.Version() || a.db.Version() != 2 {
		t.Errorf("versions a=%d b=%d, want 2 and 2", a.db.Version(), b.db.Version())
	}
	// The same registry content: the credentials agree.
	if len(a.db.Current().Credentials()) != len(b.db.Current().Credentials()) {
		t.Error("replicas disagree on the credentials")
	}
}

// A change whose notice never came (written without NOTIFY, as if the
// notice was lost with a connection) is found by the version poll.
func TestReplicaPollsForLostNotice(t *testing.T) {
	dsn := pglocal.SharedDB(t)
	b := openReplica(t, dsn, 100*time.Millisecond)
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx := context.Background()
	if _, err := raw.ExecContext(ctx, `INSERT INTO fleet.devices (id, secret_hash) VALUES ('kp-quiet', $1)`, hash); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, `UPDATE fleet.fleet_version SET n = n + 1`); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "replica finds the quiet change", func() bool { return b.has("kp-quiet") && b.changes() == 1 })
}

// The shared PostgreSQL dies (SIGKILL) and comes back: both replicas go on
// changing the fleet and see each other's changes without being reopened.
func TestReplicasAcrossPostgresRestart(t *testing.T) {
	ctx := context.Background()
	srv := pglocal.StartForTest(t)
	dsn := srv.CreateDB(t)
	a := openReplica(t, dsn, time.Minute)
	b := openReplica(t, dsn, time.Minute)
	if _, err := a.db.AddDevice(ctx, fleetdb.NewDevice{ID: "kp-1"}); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "b sees kp-1", func() bool { return b.has("kp-1") })

	srv.Kill()
	if _, err := a.db.AddDevice(ctx, fleetdb.NewDevice{ID: "kp-down"}); err == nil {
		t.Fatal("change committed with PostgreSQL down")
	}
	if a.has("kp-down") {
		t.Fatal("a failed change reached the snapshot")
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.db.AddDevice(ctx, fleetdb.NewDevice{ID: "kp-2"}); err != nil {
		t.Fatalf("change after the restart: %v", err)
	}
	// b's listening connection died with the server; it reconnects (with
	// backoff) and reloads, or hears the notice.
	testwait.Within(t, 30*time.Second, "b sees kp-2 after the restart", func() bool { return b.has("kp-2") })
	if _, err := b.db.AddDevice(ctx, fleetdb.NewDevice{ID: "kp-3"}); err != nil {
		t.Fatal(err)
	}
	testwait.Within(t, 30*time.Second, "a sees kp-3 after the restart", func() bool { return a.has("kp-3") })
	if b.has("kp-down") || a.db.Current().Len() != 3 {
		t.Errorf("a holds %d devices, want 3", a.db.Current().Len())
	}
}
