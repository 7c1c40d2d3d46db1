package ingest

import (
	"errors"
	"testing"

	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/protocol"
)

// OnVote sees each vote once, only after the spool took it: not on a
// failed append, not for a duplicate, not for other kinds.
func TestOnVote(t *testing.T) {
	f := newFixture(t, nil)
	var seen []protocol.Vote
	var places []registry.Placement
	f.in.opts.OnVote = func(v protocol.Vote, p registry.Placement) {
		if len(f.spool.lines()) == 0 {
			t.Error("OnVote called before the vote was spooled")
		}
		seen, places = append(seen, v), append(places, p)
	}
	vote := mustJSON(t, protocol.SampleVote())
	f.spool.fail(errors.New("disk full (test)"))
	if err := f.in.Accept(t.Context(), topic(protocol.KindVote), vote, now); err == nil {
		t.Fatal("Accept with a failing spool succeeded")
	}
	f.spool.fail(nil)
	for range 3 {
		if err := f.in.Accept(t.Context(), topic(protocol.KindVote), vote, now); err != nil {
			t.Fatal(err)
		}
	}
	for kind, payload := range samples(t) {
		if kind != protocol.KindVote {
			f.in.Accept(t.Context(), topic(kind), payload, now)
		}
	}
	if len(seen) != 1 || seen[0].Seq != protocol.SampleVote().Seq {
		t.Fatalf("OnVote saw %d votes, want the one vote once", len(seen))
	}
	if places[0].Counter == "" || places[0].Site == "" {
		t.Errorf("placement not passed: %+v", places[0])
	}
}
