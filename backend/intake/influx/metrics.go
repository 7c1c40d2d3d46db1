package influx

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/intake/spool"
)

// metrics are the writer's Prometheus metrics. With no Registerer they are
// created but never exposed, so the code that updates them has no branches.
type metrics struct {
	pointsWritten prometheus.Counter
	batches       prometheus.Counter
	writeErrors   prometheus.Counter
	rejected      prometheus.Counter
	writeSeconds  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, sp *spool.Spool) (*metrics, error) {
	m := &metrics{
		pointsWritten: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "semko", Subsystem: "influx",
			Name: "points_written_total", Help: "Points InfluxDB accepted."}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "semko", Subsystem: "influx",
			Name: "batches_total", Help: "Successful write requests."}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "semko", Subsystem: "influx",
			Name: "write_errors_total", Help: "Failed write requests (retried, or split to isolate refused points)."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "semko", Subsystem: "influx",
			Name: "points_rejected_total", Help: "Points InfluxDB refused for good (logged and skipped)."}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "semko", Subsystem: "influx",
			Name: "write_seconds", Help: "Duration of write requests, failed ones included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.pointsWritten, m.batches, m.writeErrors, m.rejected, m.writeSeconds, spoolCollector{sp}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observeWrite(d time.Duration) { m.writeSeconds.Observe(d.Seconds()) }

var (
	descPendingRecords = prometheus.NewDesc("semko_spool_pending_records", "Records appended to the spool and not yet written to InfluxDB.", nil, nil)
	descPendingBytes   = prometheus.NewDesc("semko_spool_pending_bytes", "Bytes of pending records on disk.", nil, nil)
	descMaxBytes       = prometheus.NewDesc("semko_spool_max_bytes", "Limit on pending bytes; appends past it are refused.", nil, nil)
	descFull           = prometheus.NewDesc("semko_spool_full", "1 while the spool refuses appends for lack of space.", nil, nil)
	descOldest         = prometheus.NewDesc("semko_spool_oldest_pending_seconds", "Age of the oldest pending record, 0 when none.", nil, nil)
	descFailed         = prometheus.NewDesc("semko_spool_failed", "1 once a disk error made the spool refuse appends until restart.", nil, nil)
	descAppendSeconds  = prometheus.NewDesc("semko_spool_append_seconds", "Duration of successful spool appends (write and fsync).", nil, nil)
)

// spoolCollector reads the spool's Stats at scrape time: the spool itself
// stays free of Prometheus.
type spoolCollector struct{ sp *spool.Spool }

func (c spoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPendingRecords, descPendingBytes, descMaxBytes, descFull, descOldest, descFailed, descAppendSeconds} {
		ch <- d
	}
}

func (c spoolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.sp.Stats()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	gauge(descPendingRecords, float64(st.PendingRecords))
	gauge(descPendingBytes, float64(st.PendingBytes))
	gauge(descMaxBytes, float64(st.MaxBytes))
	gauge(descFull, b2f(st.Full))
	gauge(descFailed, b2f(st.Failed != nil))
	age := 0.0
	if !st.OldestPending.IsZero() {
		age = time.Since(st.OldestPending).Seconds()
	}
	gauge(descOldest, age)
	h := st.AppendLatency
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b] = h.Counts[i]
	}
	ch <- prometheus.MustNewConstHistogram(descAppendSeconds, h.Count, h.Sum, buckets)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
