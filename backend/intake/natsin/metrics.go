package natsin

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	consuming prometheus.Gauge
	queued    prometheus.Gauge
	received  prometheus.Counter
	results   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		consuming: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "semko_natsin_consuming", Help: "1 while the backend consumes upstream messages from the NATS cluster's durable.",
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "semko_natsin_queue_length", Help: "Messages delivered by the cluster and waiting for an ingest worker.",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "semko_natsin_messages_received_total", Help: "Messages delivered by the cluster, redeliveries included.",
		}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "semko_natsin_messages_total",
			Help: "Messages handled, by result: accepted (acked), rejected (bad input, terminated), transient (nak, redelivered).",
		}, []string{"result"}),
	}
	for _, r := range []string{"accepted", "rejected", "transient"} {
		m.results.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.consuming, m.queued, m.received, m.results} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register natsin metrics: %w", err)
		}
	}
	return m, nil
}
