package ingest

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/protocol"
)

// Reasons a message is rejected: the reason label of
// semko_ingest_rejected_total and the reason in the log line. The set is
// fixed so the metric's cardinality stays small.
const (
	ReasonDecode        = "decode"         // not one JSON object
	ReasonVersion       = "version"        // payload version not protocol.Version
	ReasonInvalid       = "invalid"        // fails validation, or a kind devices may not publish
	ReasonClock         = "clock"          // timestamp too far ahead or too old
	ReasonUnknownDevice = "unknown_device" // the topic's device is not in the registry
	ReasonSpoofed       = "spoofed"        // payload's device differs from the topic's
	ReasonTooLarge      = "too_large"      // over protocol.MaxPayload
)

var reasons = []string{
	ReasonDecode, ReasonVersion, ReasonInvalid, ReasonClock, ReasonUnknownDevice, ReasonSpoofed, ReasonTooLarge,
}

// kindOther labels topics whose kind devices may not publish; Topic is a
// plain struct, so a caller could hand in anything.
const kindOther = "other"

type metrics struct {
	messages   *prometheus.CounterVec
	rejected   *prometheus.CounterVec
	duplicates prometheus.Counter
	lateDeaths prometheus.Counter
	seconds    prometheus.Histogram
	online     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "semko_ingest_messages_total",
			Help: "Upstream messages accepted (acknowledged as good), duplicates included, by kind.",
		}, []string{"kind"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "semko_ingest_rejected_total",
			Help: "Upstream messages rejected as bad input and discarded, by kind and reason.",
		}, []string{"kind", "reason"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "semko_ingest_duplicates_total",
			Help: "Votes and activation records acknowledged without appending because they were already spooled.",
		}),
		lateDeaths: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "semko_ingest_late_deaths_total",
			Help: "Death certificates ignored because their bdseq is older than the last birth's.",
		}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "semko_ingest_accept_seconds",
			Help:    "Time to accept one upstream message, spool fsync included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		online: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "semko_devices_online",
			Help: "Devices whose last presence says online.",
		}),
	}
	// Create every series up front so dashboards see zeros, not gaps.
	for _, k := range protocol.Kinds() {
		if !k.Upstream() {
			continue
		}
		m.messages.WithLabelValues(string(k))
		for _, r := range reasons {
			m.rejected.WithLabelValues(string(k), r)
		}
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.messages, m.rejected, m.duplicates, m.lateDeaths, m.seconds, m.online} {
		if err := reg.Register(c); err != nil {
			// Usually prometheus.AlreadyRegisteredError: one Ingest per registerer.
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
