package backend_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/account"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/pglocal"
	"github.com/semko/semko/internal/testwait"
)

// TestReplicasSharePostgres runs two backends (separate data dirs, own
// embedded brokers) on one PostgreSQL database (database.postgres): a
// device added through one replica's API can connect to the other's broker
// once its snapshot follows; an account made on one signs in on the other,
// and the session is valid on both; an alert raised on one is listed by the
// other; the API change is in the shared audit log.
func TestReplicasSharePostgres(t *testing.T) {
	ctx := context.Background()
	dsn := pglocal.StartForTest(t).CreateDB(t)
	model := fleet.Generate(fleet.Spec{Seed: 14, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 2})
	cfg1, cfg2 := newTestConfig(t, model, nil), newTestConfig(t, model, nil)
	cfg1.Database.Postgres, cfg2.Database.Postgres = dsn, dsn
	r1 := runBackend(t, cfg1)
	r2 := runBackend(t, cfg2)

	// The fleet.
	var added struct{ Device, Secret string }
	apiDo(t, "POST", "http://"+r1.HTTPAddr()+"/api/v1/fleet/devices", `{"id": "kp-shared"}`, 201, &added)
	took := testwait.Within(t, 30*time.Second, "replica 2's snapshot has kp-shared", func() bool {
		_, ok := r2.Fleet().Current().Device("kp-shared")
		return ok
	})
	t.Logf("a device added on replica 1 was in replica 2's registry %v later", took)
	dialMQTT(t, r2.MQTTAddr(), "127.0.0.1", "kp-shared", "kp-shared", added.Secret)

	// Accounts and sessions.
	if err := r1.Accounts().Create(ctx, account.Account{Name: "mara", Role: access.Admin, Scope: access.Everything}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	sid, _, err := r2.Accounts().SignIn(ctx, "mara", "correct horse battery", "127.0.0.1", "en")
	if err != nil {
		t.Fatalf("sign-in on replica 2 with an account made on replica 1: %v", err)
	}
	if se, err := r1.Accounts().Store().Session(ctx, account.Hash(sid), time.Now()); err != nil || se.Account != "mara" {
		t.Fatalf("session made on replica 2, through replica 1: %+v, %v", se, err)
	}
	if err := r1.Accounts().SignOut(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Accounts().Store().Session(ctx, account.Hash(sid), time.Now()); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("session signed out on replica 1 still found on replica 2: %v", err)
	}

	// Alerts.
	sub := alert.Subject{Org: model.Orgs[0].ID, Site: model.Orgs[0].Sites[0].ID, Device: "kp-shared"}
	if err := r1.Alerts().Raise(ctx, alert.Finding{Kind: alert.KindOffline, Subject: sub, Message: "offline"}); err != nil {
		t.Fatal(err)
	}
	list, err := r2.Alerts().List(ctx, alert.Filter{Device: "kp-shared"})
	if err != nil || len(list) != 1 || list[0].Kind != alert.KindOffline {
		t.Fatalf("replica 2 lists %+v, %v; want the alert raised on replica 1", list, err)
	}

	// The audit log of the API change, read through the other replica.
	log, err := r2.Accounts().Store().Audit(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range log {
		found = found || (e.Actor == "bootstrap" && e.Target == "/api/v1/fleet/devices")
	}
	if !found {
		t.Errorf("replica 2's audit log %+v lacks replica 1's device addition", log)
	}
}

// The cluster example names the shared database, and a malformed URL is
// refused at load rather than at the first store.
func TestDatabaseConfig(t *testing.T) {
	cfg, err := backend.LoadConfig("../deploy/cluster/semko-cluster.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Database.Postgres != "postgres://semko@10.0.0.9:5432/semko?sslmode=verify-full" {
		t.Errorf("database.postgres = %q", cfg.Database.Postgres)
	}
	cfg.Database.Postgres = "postgres://semko@10.0.0.9:notaport/semko"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "database: postgres") {
		t.Errorf("malformed URL: %v", err)
	}
}
