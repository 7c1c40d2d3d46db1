package faults

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
)

// landed is what InfluxDB holds for one device.
type landed struct {
	fleet.Counts          // Activations, Votes, Scores (valid), Invalid
	dupSeqs      []uint64 // vote seqs found on more than one point
	misordered   int      // points whose seq is not above the previous point's (by time)
}

// readLanded reads every vote and activation point, by device. Rows come in
// time order, so the seq check proves the press order survived: the edge
// numbers its outbox in the order of the presses, and each point carries the
// press time.
func readLanded(t *testing.T, db *influxlocal.Server) map[string]*landed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[string]*landed{}
	of := func(dev string) *landed {
		if out[dev] == nil {
			out[dev] = &landed{}
		}
		return out[dev]
	}
	votes, err := db.Query(ctx, `SELECT score, seq, "valid" FROM vote GROUP BY device`)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range votes {
		l := of(s.Tags["device"])
		seen := map[uint64]bool{}
		var last uint64
		for row := range s.Values {
			score, err1 := s.Int(row, "score")
			seq, err2 := s.Int(row, "seq")
			valid, err3 := s.Text(row, "valid")
			if err1 != nil || err2 != nil || err3 != nil {
				t.Fatalf("vote row %d of %s: %v %v %v", row, s.Tags["device"], err1, err2, err3)
			}
			if seen[uint64(seq)] {
				l.dupSeqs = append(l.dupSeqs, uint64(seq))
			}
			seen[uint64(seq)] = true
			if uint64(seq) <= last {
				l.misordered++
			}
			last = uint64(seq)
			switch {
			case valid != "true":
				l.Invalid++
			case score >= 1 && score <= 5:
				l.Votes++
				l.Scores[score-1]++
			default:
				t.Errorf("device %s: valid vote with score %d", s.Tags["device"], score)
			}
		}
	}
	// window_s is in both reports of an activation; voted, closed and seq only
	// in the closing one, and a test may end with a window still open.
	acts, err := db.Query(ctx, `SELECT count(window_s) FROM activation GROUP BY device`)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range acts {
		n, err := s.Int(0, "count")
		if err != nil {
			t.Fatal(err)
		}
		of(s.Tags["device"]).Activations = int(n)
	}
	return out
}

// checkExact compares InfluxDB with what the keypads saw taken, device by
// device: activations, valid votes by score, invalid presses, and no seq on
// two points. It returns the number of valid votes landed. With ordered set
// it also requires the points of each device to be in press order.
func checkExact(t *testing.T, db *influxlocal.Server, want map[string]fleet.Counts, ordered bool) int {
	t.Helper()
	got := readLanded(t, db)
	total := 0
	for _, dev := range slices.Sorted(maps.Keys(want)) {
		w := want[dev]
		g := got[dev]
		if g == nil {
			g = &landed{}
		}
		total += g.Votes
		if w.Unsure != 0 {
			t.Errorf("device %s: %d presses with unknown outcome: the comparison cannot be exact", dev, w.Unsure)
		}
		if g.Scores != w.Scores || g.Votes != w.Votes {
			t.Errorf("device %s: valid votes by score %v (%d) in InfluxDB, pressed %v (%d)", dev, g.Scores, g.Votes, w.Scores, w.Votes)
		}
		if g.Invalid != w.Invalid {
			t.Errorf("device %s: %d invalid presses in InfluxDB, pressed %d", dev, g.Invalid, w.Invalid)
		}
		if g.Activations != w.Activations {
			t.Errorf("device %s: %d activations in InfluxDB, opened %d", dev, g.Activations, w.Activations)
		}
		if len(g.dupSeqs) > 0 {
			t.Errorf("device %s: vote seqs on two points: %v", dev, g.dupSeqs)
		}
		if ordered && g.misordered > 0 {
			t.Errorf("device %s: %d points out of press order", dev, g.misordered)
		}
	}
	for dev := range got {
		if _, ok := want[dev]; !ok {
			t.Errorf("InfluxDB has points of %s, which pressed nothing", dev)
		}
	}
	return total
}

// sumCounts adds up per-device counts.
func sumCounts(m map[string]fleet.Counts) fleet.Counts {
	var total fleet.Counts
	for _, c := range m {
		total.Activations += c.Activations
		total.Votes += c.Votes
		total.Invalid += c.Invalid
		total.Unsure += c.Unsure
		for i := range c.Scores {
			total.Scores[i] += c.Scores[i]
		}
	}
	return total
}

func describe(c fleet.Counts) string {
	return fmt.Sprintf("%d activations, %d valid votes %v, %d invalid", c.Activations, c.Votes, c.Scores, c.Invalid)
}
