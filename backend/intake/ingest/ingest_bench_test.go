package ingest

import (
	"encoding/json"
	"strconv"
	"sync"
	"testing"

	"github.com/semko/semko/backend/intake/spool"
	"github.com/semko/semko/protocol"
)

// BenchmarkAccept runs votes through Accept (decode, validate, dedup,
// enrich, encode) into a real spool on disk, with 1 and 64 concurrent
// devices: the latter is what the broker does, one goroutine per
// connection, and shows the spool's group commit at work. Every vote has
// its own seq, so none is skipped as a duplicate.
func BenchmarkAccept(b *testing.B) {
	for _, devices := range []int{1, 64} {
		b.Run("devices="+strconv.Itoa(devices), func(b *testing.B) {
			sp, err := spool.Open(b.TempDir(), spool.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer sp.Close()
			f := newFixture(b, sp)
			stop := make(chan struct{})
			var drained sync.WaitGroup
			drained.Go(func() { drainSpool(sp, stop) })

			base := protocol.SampleVote()
			sample, _ := json.Marshal(base)
			b.SetBytes(int64(len(sample)))
			b.ReportAllocs()
			// Payloads are marshalled before the clock starts: the edge, not
			// the backend, pays for encoding.
			per := b.N/devices + 1
			payloads := make([][][]byte, devices)
			var seq uint64
			for d := range payloads {
				for range per {
					seq++
					v := base
					v.Seq = seq
					p, _ := json.Marshal(v)
					payloads[d] = append(payloads[d], p)
				}
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			for d := range devices {
				wg.Go(func() {
					for _, p := range payloads[d] {
						if err := f.in.Accept(b.Context(), topic(protocol.KindVote), p, now); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			close(stop)
			drained.Wait()
		})
	}
}

// drainSpool commits whatever is appended, as the InfluxDB writer would, so
// the spool never fills during a long benchmark.
func drainSpool(sp *spool.Spool, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-sp.Notify():
		}
		for {
			recs, _ := sp.Read(10000, 8<<20)
			if len(recs) == 0 {
				break
			}
			_ = sp.Commit(recs[len(recs)-1].ID)
		}
	}
}
