package spool

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"
)

// BenchmarkAppend measures durable appends of a vote-sized record with 1
// and 64 concurrent appenders: group commit should make the second much
// faster per record, as they share fsyncs.
func BenchmarkAppend(b *testing.B) {
	rec := []byte(`vote,org=acme,site=hq,counter=c1,device=kp-0001,channel=keypad,valid=true score=5i,satisfied=1i,negative=0i,latency_ms=3200i,service_s=240i,seq=1234i,activation="a-1" 1732400000000000000`)
	for _, appenders := range []int{1, 64} {
		b.Run("appenders="+strconv.Itoa(appenders), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			// Keep the spool from filling: a consumer commits as it goes.
			stop := make(chan struct{})
			var drained sync.WaitGroup
			drained.Go(func() {
				for {
					select {
					case <-stop:
						return
					case <-s.Notify():
					}
					for {
						recs, _ := s.Read(10000, 8<<20)
						if len(recs) == 0 {
							break
						}
						_ = s.Commit(recs[len(recs)-1].ID)
					}
				}
			})
			b.SetBytes(int64(len(rec)))
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/appenders + 1
			for range appenders {
				wg.Go(func() {
					for range per {
						if err := s.Append(context.Background(), rec); err != nil {
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
			st := s.Stats()
			b.ReportMetric(float64(st.Appended)/float64(max(st.Syncs, 1)), "records/fsync")
		})
	}
}
