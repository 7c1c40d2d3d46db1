package backend

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/broker"
)

// brokerCollector exposes the embedded broker's counters as semko_broker_*
// series. It reads broker.Stats at scrape time, so the broker keeps no
// Prometheus dependency of its own.
type brokerCollector struct {
	b *broker.Broker

	clients, subscriptions, retained, inflight   *prometheus.Desc
	messagesIn, intakeAccepted, authFailures     *prometheus.Desc
	aclDenied, rejected, intakeRetries, willFail *prometheus.Desc
	rateLimited, dropped                         *prometheus.Desc
	connLimited, connectTimeouts, badConnects    *prometheus.Desc
	oversized, idleTimeouts, rateDelayed         *prometheus.Desc
	resumeRepublished, revoked                   *prometheus.Desc
}

func newBrokerCollector(b *broker.Broker) *brokerCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("semko_broker_"+name, help, labels, nil)
	}
	return &brokerCollector{
		b:                 b,
		clients:           d("clients_connected", "MQTT clients with an established session."),
		subscriptions:     d("subscriptions", "Active subscriptions."),
		retained:          d("retained_messages", "Retained messages held."),
		inflight:          d("inflight_messages", "Outbound QoS 1/2 messages awaiting acknowledgement."),
		messagesIn:        d("messages_in_total", "PUBLISH packets from network clients that passed the ACL."),
		intakeAccepted:    d("intake_accepted_total", "Device messages made durable before their PUBACK."),
		authFailures:      d("auth_failures_total", "Refused connections (wrong or missing credentials)."),
		aclDenied:         d("acl_denied_total", "Refused publishes, subscriptions and wills."),
		rejected:          d("rejected_total", "Device messages acknowledged and discarded as bad input.", "reason"),
		intakeRetries:     d("intake_retries_total", "Device messages whose PUBACK was withheld (transient failure); the device resends."),
		willFail:          d("will_intake_failures_total", "Wills the intake could not take."),
		rateLimited:       d("rate_limited_total", "Publishes refused by the per-client rate limit."),
		dropped:           d("dropped_total", "Outbound messages mochi discarded because a client's queue was full."),
		connLimited:       d("conn_limited_total", "Connections refused because their address had the maximum open."),
		connectTimeouts:   d("connect_timeouts_total", "Connections closed because no CONNECT arrived in time (half-open)."),
		badConnects:       d("bad_connects_total", "Connections closed because the first packet was not a valid CONNECT."),
		oversized:         d("oversized_packets_total", "Connections closed for a packet over the size limit."),
		rateDelayed:       d("rate_delayed_total", "Publishes held back to the client's rate limit (the client is slowed, not refused)."),
		resumeRepublished: d("resume_republished_total", "Messages caught on a session being taken over and published again to its successor."),
		idleTimeouts:      d("idle_timeouts_total", "Sessions closed after 1.5 keepalives of silence (a vanished network or a silent client)."),
		revoked:           d("revoked_sessions_total", "Sessions ended because their account was removed or its secret or role changed."),
	}
}

func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.clients, c.subscriptions, c.retained, c.inflight, c.messagesIn, c.intakeAccepted, c.authFailures,
		c.aclDenied, c.rejected, c.intakeRetries, c.willFail, c.rateLimited, c.dropped,
		c.connLimited, c.connectTimeouts, c.badConnects, c.oversized, c.idleTimeouts, c.rateDelayed, c.resumeRepublished,
		c.revoked,
	} {
		ch <- d
	}
}

func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.b.Stats()
	gauge := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.clients, s.ClientsConnected)
	gauge(c.subscriptions, s.Subscriptions)
	gauge(c.retained, s.Retained)
	gauge(c.inflight, s.Inflight)
	counter(c.messagesIn, s.MessagesIn)
	counter(c.intakeAccepted, s.IntakeAccepted)
	counter(c.authFailures, s.AuthFailures)
	counter(c.aclDenied, s.ACLDenied)
	for reason, n := range s.RejectedInvalid {
		counter(c.rejected, n, reason)
	}
	counter(c.intakeRetries, s.IntakeRetries)
	counter(c.willFail, s.WillIntakeFails)
	counter(c.rateLimited, s.RateLimited)
	counter(c.dropped, s.Dropped)
	counter(c.connLimited, s.ConnLimited)
	counter(c.connectTimeouts, s.ConnectTimeouts)
	counter(c.badConnects, s.BadConnects)
	counter(c.oversized, s.Oversized)
	counter(c.idleTimeouts, s.IdleTimeouts)
	counter(c.rateDelayed, s.RateDelayed)
	counter(c.resumeRepublished, s.ResumeRepublished)
	counter(c.revoked, s.Revoked)
}
