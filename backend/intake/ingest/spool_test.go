package ingest

import (
	"errors"
	"strings"
	"testing"

	"github.com/semko/semko/backend/intake/spool"
	"github.com/semko/semko/protocol"
)

// TestRealSpool runs the intake against the real spool on disk: accepted
// messages are readable after a reopen (they were fsynced), duplicates are
// not appended twice, and a full spool is transient trouble, not bad input.
func TestRealSpool(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, sp)
	all := samples(t)
	for _, k := range []protocol.Kind{protocol.KindVote, protocol.KindVote, protocol.KindActivation, protocol.KindHeartbeat, protocol.KindStatus} {
		if err := f.in.Accept(t.Context(), topic(k), all[k], now); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}

	sp, err = spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	recs, err := sp.Read(100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var measurements []string
	for _, r := range recs {
		m, _, _ := strings.Cut(string(r.Data), ",")
		measurements = append(measurements, m)
	}
	if got, want := strings.Join(measurements, " "), "vote activation heartbeat presence"; got != want {
		t.Fatalf("spooled %q, want %q", got, want)
	}
	if !strings.Contains(string(recs[0].Data), "counter=c-1") || !strings.Contains(string(recs[0].Data), "device=kp-0001") {
		t.Errorf("vote not enriched with placement: %s", recs[0].Data)
	}

	// A spool with room for nothing refuses: the device must keep its vote.
	tiny, err := spool.Open(t.TempDir(), spool.Options{MaxBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tiny.Close()
	g := newFixture(t, tiny)
	err = g.in.Accept(t.Context(), topic(protocol.KindVote), all[protocol.KindVote], now)
	if !errors.Is(err, spool.ErrFull) || protocol.Permanent(err) {
		t.Fatalf("Accept on a full spool = %v, want transient ErrFull", err)
	}
	// Closed spool: transient too.
	if err := tiny.Close(); err != nil {
		t.Fatal(err)
	}
	err = g.in.Accept(t.Context(), topic(protocol.KindVote), all[protocol.KindVote], now)
	if !errors.Is(err, spool.ErrClosed) || protocol.Permanent(err) {
		t.Fatalf("Accept on a closed spool = %v, want transient ErrClosed", err)
	}
}
