package backend_test

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"io"
	"testing"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/report"
	"github.com/semko/semko/backend/report/delivery"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/pglocal"
)

// TestReplicasSharePeoplesData: with database.postgres, an incident's
// attachment taken by one replica is served by the other, and a report
// subscription made on one is listed (and so sent once) by the other.
func TestReplicasSharePeoplesData(t *testing.T) {
	ctx := context.Background()
	dsn := pglocal.StartForTest(t).CreateDB(t)
	model := fleet.Generate(fleet.Spec{Seed: 15, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 1})
	cfg1, cfg2 := newTestConfig(t, model, nil), newTestConfig(t, model, nil)
	cfg1.Database.Postgres, cfg2.Database.Postgres = dsn, dsn
	r1 := runBackend(t, cfg1)
	r2 := runBackend(t, cfg2)

	img := image.NewGray(image.Rect(0, 0, 700, 700))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 3)
	}
	var scan bytes.Buffer
	if err := png.Encode(&scan, img); err != nil {
		t.Fatal(err)
	}
	att, created, err := r1.Incidents().Files().Put(ctx, "scan.png", bytes.NewReader(scan.Bytes()))
	if err != nil || !created {
		t.Fatalf("put on replica 1: created=%v, %v", created, err)
	}
	rc, err := r2.Incidents().Files().Open(ctx, att.Hash)
	if err != nil {
		t.Fatalf("open on replica 2: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, scan.Bytes()) {
		t.Fatalf("replica 2 read %d bytes (%v), want replica 1's %d", len(got), err, scan.Len())
	}

	sub := delivery.Subscription{Account: "maria", Scope: access.Everything, Period: report.Week, Format: "pdf", Lang: "bg",
		Recipients: []string{"maria@example.org"}}
	if err := r1.ReportSubscriptions().Subscribe(ctx, &sub); err != nil {
		t.Fatal(err)
	}
	subs, err := r2.ReportSubscriptions().Subscriptions(ctx)
	if err != nil || len(subs) != 1 || subs[0].ID != sub.ID || subs[0].Account != "maria" {
		t.Fatalf("replica 2 lists %+v, %v; want replica 1's subscription %d", subs, err, sub.ID)
	}
}
