package engine

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	invitations  *prometheus.CounterVec
	answers      *prometheus.CounterVec
	followups    *prometheus.CounterVec
	repeats      prometheus.Counter
	unsubscribes prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		invitations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "semko_survey_invitations_total",
			Help: "Survey invitations by result: sent, recent (the once-per-period rule), unsubscribed, failed.",
		}, []string{"result"}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "semko_survey_answers_total",
			Help: "Survey answers recorded, by channel and category (promoter, passive, detractor).",
		}, []string{"channel", "category"}),
		followups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "semko_survey_followups_total",
			Help: "Follow-up events: opened, overdue, closed_in_time, closed_late.",
		}, []string{"event"}),
		repeats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "semko_survey_repeat_answers_total",
			Help: "Second clicks, reloads and second tabs that found the answer already recorded.",
		}),
		unsubscribes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "semko_survey_unsubscribes_total",
			Help: "Addresses unsubscribed from surveys.",
		}),
	}
	for _, r := range []string{"sent", "recent", "unsubscribed", "failed"} {
		m.invitations.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.invitations, m.answers, m.followups, m.repeats, m.unsubscribes} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("survey metrics: %w", err)
			}
		}
	}
	return m, nil
}
