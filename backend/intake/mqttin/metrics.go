package mqttin

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	connected prometheus.Gauge
	queued    prometheus.Gauge
	connects  prometheus.Counter
	lost      prometheus.Counter
	forced    prometheus.Counter
	received  prometheus.Counter
	results   *prometheus.CounterVec
	publishes *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "semko_mqttin_connected", Help: "1 while the backend is connected to the external broker.",
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "semko_mqttin_queue_length", Help: "Messages received and waiting for an ingest worker.",
		}),
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "semko_mqttin_connects_total", Help: "Connections established to the external broker.",
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "semko_mqttin_connections_lost_total", Help: "Connections to the external broker lost.",
		}),
		forced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "semko_mqttin_forced_reconnects_total",
			Help: "Reconnects made on purpose after repeated transient ingest failures, so the broker resends.",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "semko_mqttin_messages_received_total", Help: "Messages delivered by the broker, redeliveries included.",
		}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "semko_mqttin_messages_total",
			Help: "Messages handled, by result: accepted (acked), rejected (bad input, acked), transient (left for redelivery).",
		}, []string{"result"}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "semko_mqttin_publishes_total", Help: "Downstream publishes, by result.",
		}, []string{"result"}),
	}
	for _, r := range []string{"accepted", "rejected", "transient"} {
		m.results.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.connected, m.queued, m.connects, m.lost, m.forced, m.received, m.results, m.publishes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register mqttin metrics: %w", err)
		}
	}
	return m, nil
}
