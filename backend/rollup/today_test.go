package rollup

import (
	"testing"
	"time"

	"github.com/semko/semko/internal/influxdb"
	"github.com/semko/semko/internal/influxlocal"
)

// TestSince reads the seeded population from a real InfluxDB: votes and
// activations per site since a time, NPS answers, invalid and older votes
// left out.
func TestSince(t *testing.T) {
	srv := influxlocal.StartForTest(t)
	fleet(t, srv)
	db, err := influxdb.New(influxdb.Options{URL: srv.URL(), Bucket: srv.Database()})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Since(t.Context(), db, t0.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	a, b := got[Place{"a", "s1"}], got[Place{"b", "s2"}]
	if a != (Tally{Votes: 33, Satisfied: 27, Activations: 40, Voted: 30}) {
		t.Errorf("a/s1 = %+v", a)
	}
	if b != (Tally{Votes: 10, Satisfied: 4}) {
		t.Errorf("b/s2 = %+v", b)
	}
	if share, ok := a.SatisfiedShare(); !ok || share != 27.0/33 {
		t.Errorf("share %v %v", share, ok)
	}
	if _, ok := b.Participation(); ok {
		t.Error("participation without activations")
	}
	a.Add(b)
	if a.Votes != 43 {
		t.Errorf("Add: %+v", a)
	}
}
