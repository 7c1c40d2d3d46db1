package influx

import (
	"context"
	"testing"
	"time"

	"github.com/influxdata/influxdb-client-go/v2/api/write"

	"github.com/semko/semko/backend/intake/spool"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/protocol"
)

func BenchmarkVoteLine(b *testing.B) {
	v, buf := protocol.SampleVote(), make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = VoteLine(buf[:0], v, place)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkVoteLineClientLibrary is the same line through the client's
// write.NewPoint and PointToLineProtocol, for comparison.
func BenchmarkVoteLineClientLibrary(b *testing.B) {
	v := protocol.SampleVote()
	b.ReportAllocs()
	for b.Loop() {
		p := write.NewPoint("vote",
			map[string]string{"org": place.Org, "site": place.Site, "counter": place.Counter, "device": v.Device,
				"service": v.Service, "operator": v.Operator, "channel": v.Channel},
			map[string]any{"score": v.Score, "satisfied": 1, "negative": 0, "latency_ms": v.LatencyMS,
				"service_s": v.ServiceS, "seq": int64(v.Seq), "valid": "true", "activation": v.Activation},
			v.Time)
		_ = write.PointToLineProtocol(p, time.Nanosecond)
	}
}

// BenchmarkWriterThroughput drains b.N votes from a spool into a real
// InfluxDB 1.8 (started by the benchmark; not part of the tests).
func BenchmarkWriterThroughput(b *testing.B) {
	srv := influxlocal.StartForTest(b)
	sp, err := spool.Open(b.TempDir(), spool.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	var recs [][]byte
	for i := range b.N {
		recs = append(recs, VoteLine(nil, vote(i), place))
		if len(recs) == 1000 || i == b.N-1 {
			if err := sp.Append(context.Background(), recs...); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	w, err := NewWriter(sp, WriterOptions{URL: srv.URL(), Bucket: srv.Database()})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	for sp.Stats().PendingRecords > 0 {
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "points/s")
}
