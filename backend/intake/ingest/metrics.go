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
	ReasonDecode  = "decode"  // not one JSON object
	ReasonVersion = "version" // payload version not protocol.Version
	ReasonInvalid = "invalid" // fails validation, or a kind devices may not publish
	// ReasonClock is no longer used: a timestamp out of range is held
	// apart, not rejected (see clock.go). The series stays at zero.
	ReasonClock         = "clock"
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
	// unconfirmed counts tag values a device sent that were not taken as
	// tags (see Ingest.confine), by kind and tag.
	unconfirmed *prometheus.CounterVec
	lateDeaths  prometheus.Counter
	clockHeld   *prometheus.CounterVec
	seconds     prometheus.Histogram
	online      prometheus.Gauge
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
		unconfirmed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "semko_ingest_unconfirmed_tags_total",
			Help: "Tag values devices sent that the registry or the known set did not confirm: stored as <tag>_claimed fields, the tag takes the default. By kind and tag.",
		}, []string{"kind", "tag"}),
		clockHeld: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "semko_ingest_clock_held_total",
			Help: "Votes and activation records whose timestamp was out of the accepted range, kept apart (measurement <kind>_held), by kind.",
		}, []string{"kind"}),
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
		if k == protocol.KindVote || k == protocol.KindActivation {
			m.clockHeld.WithLabelValues(string(k))
		}
		for _, r := range reasons {
			m.rejected.WithLabelValues(string(k), r)
		}
	}
	if reg == nil {
		return m, nil
	}
	for _, kt := range []struct {
		kind protocol.Kind
		tag  string
	}{
		{protocol.KindVote, "operator"}, {protocol.KindVote, "service"}, {protocol.KindVote, "channel"},
		{protocol.KindActivation, "operator"}, {protocol.KindActivation, "service"}, {protocol.KindHeartbeat, "fw"},
	} {
		m.unconfirmed.WithLabelValues(string(kt.kind), kt.tag)
	}
	for _, c := range []prometheus.Collector{m.messages, m.rejected, m.duplicates, m.unconfirmed, m.lateDeaths, m.clockHeld, m.seconds, m.online} {
		if err := reg.Register(c); err != nil {
			// Usually prometheus.AlreadyRegisteredError: one Ingest per registerer.
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
