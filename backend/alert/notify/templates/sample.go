package templates

import (
	"time"

	"github.com/semko/semko/backend/alert"
)

// Sample returns a realistic notice of group g for a receiver writing in
// lang. Tests of every channel and the golden files use it; it is also handy
// for trying a mail server by hand.
func Sample(g Group, lang string) alert.Notice {
	at := time.Date(2026, 3, 27, 16, 42, 5, 0, time.UTC) // Friday evening in Sofia
	rcv := alert.Receiver{Name: "Мария Петрова", Email: []string{"maria@example.org"}, Lang: lang}
	n := alert.Notice{ID: "n-" + string(g) + "-" + lang, Receiver: rcv, Lang: lang, Time: at}
	where := alert.Subject{Org: "sofia-mun", Site: "mladost", Counter: "c3", Device: "kp-0012"}
	switch g {
	case GroupNegative:
		n.Kind, n.Severity, n.Group = alert.KindNegativeVote, alert.SeverityWarning, "sofia-mun/mladost|negative_vote"
		n.Alerts = []alert.Alert{{
			ID: 41, Kind: alert.KindNegativeVote, Severity: alert.SeverityWarning, State: alert.StateFiring,
			Subject: alert.Subject{Org: "sofia-mun", Site: "mladost", Counter: "c3", Operator: "op-7"},
			Details: map[string]string{
				DetailScore: "1", DetailSiteName: "Район Младост", DetailCounterName: "Гише 3",
				DetailOperator: "op-7", DetailOperatorName: "Иван Иванов", DetailService: "addr",
				DetailServiceName: "Адресна регистрация", DetailServiceS: "250",
			},
			Count: 2, StartsAt: at.Add(-3 * time.Minute), LastSeen: at, UpdatedAt: at,
			DueAt: time.Date(2026, 3, 30, 11, 0, 0, 0, time.UTC),
		}}
	case GroupDevice:
		n.Kind, n.Severity, n.Group = alert.KindStuckKey, alert.SeverityCritical, "sofia-mun/mladost|stuck_key"
		n.Alerts = []alert.Alert{{
			ID: 7, Kind: alert.KindStuckKey, Severity: alert.SeverityCritical, State: alert.StateFiring, Subject: where,
			Message: "key 5 pressed 212 times in 10 minutes", Hint: "free the key or replace the keypad",
			Details:  map[string]string{DetailSiteName: "Район Младост", DetailCounterName: "Гише 3"},
			StartsAt: at.Add(-20 * time.Minute), LastSeen: at, UpdatedAt: at, DueAt: at.Add(68 * time.Hour),
		}, {
			ID: 8, Kind: alert.KindStuckKey, Severity: alert.SeverityWarning, State: alert.StateAcknowledged,
			Subject:  alert.Subject{Org: "sofia-mun", Site: "mladost", Counter: "c4", Device: "kp-0013"},
			StartsAt: at.Add(-time.Hour), LastSeen: at,
		}}
	case GroupLifecycle:
		n.Kind, n.Severity, n.Group = alert.KindWarrantyEnd, alert.SeverityInfo, "sofia-mun/mladost|warranty_end"
		n.Alerts = []alert.Alert{{
			ID: 90, Kind: alert.KindWarrantyEnd, Severity: alert.SeverityInfo, State: alert.StateFiring, Subject: where,
			Details:  map[string]string{DetailSoonest: "2026-04-15", DetailDevices: "kp-0012", DetailSiteName: "Район Младост", DetailCounterName: "Гише 3"},
			StartsAt: at, LastSeen: at,
		}}
	case GroupEscalation:
		n.Kind, n.Severity, n.Group, n.Escalation = alert.KindOffline, alert.SeverityCritical, "sofia-mun/mladost|offline", 1
		n.Alerts = []alert.Alert{{
			ID: 12, Kind: alert.KindOffline, Severity: alert.SeverityCritical, State: alert.StateFiring, Subject: where,
			Message: "no heartbeat for 3h10m", Escalation: 1,
			StartsAt: at.Add(-5 * time.Hour), LastSeen: at.Add(-190 * time.Minute), DueAt: at.Add(-10 * time.Minute),
		}}
	case GroupIncident:
		n.Kind, n.Severity, n.Group = alert.KindIncidentOverdue, alert.SeverityWarning, "shop/mall|incident_overdue"
		n.Alerts = []alert.Alert{{
			ID: 55, Kind: alert.KindIncidentOverdue, Severity: alert.SeverityWarning, State: alert.StateFiring,
			Subject: alert.Subject{Org: "shop", Site: "mladost", Counter: "incident-31"},
			Details: map[string]string{DetailIncident: "31", DetailDepartment: "Retail shop", DetailLink: "https://semko.example.org/incidents/31",
				DetailType: "product_quality", DetailPassedTo: "maria", DetailSiteName: "Район Младост"},
			StartsAt: at, LastSeen: at, DueAt: at.Add(3 * time.Hour),
		}}
	}
	return n
}
