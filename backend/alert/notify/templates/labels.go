package templates

import "github.com/semko/semko/backend/alert"

// vocabulary is what one language calls kinds, severities and states, and
// its short units for durations.
type vocabulary struct {
	kinds      map[alert.Kind]string
	severities map[alert.Severity]string
	states     map[alert.State]string
	min, sec   string
}

var labels = map[string]vocabulary{
	"en": {
		kinds: map[alert.Kind]string{
			alert.KindOffline:          "keypad offline",
			alert.KindStuckKey:         "stuck key",
			alert.KindDeadPanel:        "instruction panel fault",
			alert.KindDeadBacklight:    "backlight fault",
			alert.KindSelfTestFailed:   "self-test failed",
			alert.KindSelfTestMissing:  "self-test not answered",
			alert.KindSilentUnit:       "no votes despite activations",
			alert.KindClockDrift:       "keypad clock drift",
			alert.KindEdgeClock:        "edge clock wrong",
			alert.KindOutboxBacklog:    "unsent votes piling up",
			alert.KindOutdatedFirmware: "outdated firmware",
			alert.KindWarrantyEnd:      "warranty ending",
			alert.KindReplacementDue:   "replacement due",
			alert.KindNegativeVote:     "negative rating",
			alert.KindNegativeStreak:   "run of negative ratings",
			alert.KindSatisfactionDrop: "satisfaction dropped",
			alert.KindPositiveStreak:   "run of positive ratings",
			alert.KindIncidentOverdue:  "incident past its deadline",
		},
		severities: map[alert.Severity]string{
			alert.SeverityInfo: "info", alert.SeverityWarning: "warning", alert.SeverityCritical: "critical",
		},
		states: map[alert.State]string{
			alert.StateFiring: "open", alert.StateAcknowledged: "acknowledged", alert.StateResolved: "resolved",
		},
		min: "min", sec: "s",
	},
	"bg": {
		kinds: map[alert.Kind]string{
			alert.KindOffline:          "пултът е без връзка",
			alert.KindStuckKey:         "заседнал бутон",
			alert.KindDeadPanel:        "повреда в информационния панел",
			alert.KindDeadBacklight:    "повреда в подсветката",
			alert.KindSelfTestFailed:   "неуспешен самотест",
			alert.KindSelfTestMissing:  "няма отговор на самотест",
			alert.KindSilentUnit:       "няма оценки при активирания",
			alert.KindClockDrift:       "отклонение в часовника на пулта",
			alert.KindEdgeClock:        "грешен часовник на устройството",
			alert.KindOutboxBacklog:    "натрупани неизпратени оценки",
			alert.KindOutdatedFirmware: "остарял фърмуер",
			alert.KindWarrantyEnd:      "изтичаща гаранция",
			alert.KindReplacementDue:   "предстояща подмяна",
			alert.KindNegativeVote:     "негативна оценка",
			alert.KindNegativeStreak:   "поредица негативни оценки",
			alert.KindSatisfactionDrop: "спад на удовлетвореността",
			alert.KindPositiveStreak:   "поредица положителни оценки",
			alert.KindIncidentOverdue:  "просрочен инцидент",
		},
		severities: map[alert.Severity]string{
			alert.SeverityInfo: "информация", alert.SeverityWarning: "предупреждение", alert.SeverityCritical: "критично",
		},
		states: map[alert.State]string{
			alert.StateFiring: "активно", alert.StateAcknowledged: "потвърдено", alert.StateResolved: "решено",
		},
		min: "мин", sec: "сек",
	},
	"ru": {
		kinds: map[alert.Kind]string{
			alert.KindOffline:          "пульт не на связи",
			alert.KindStuckKey:         "залипшая кнопка",
			alert.KindDeadPanel:        "неисправность информационной панели",
			alert.KindDeadBacklight:    "неисправность подсветки",
			alert.KindSelfTestFailed:   "самотест не пройден",
			alert.KindSelfTestMissing:  "нет ответа на самотест",
			alert.KindSilentUnit:       "нет оценок при активациях",
			alert.KindClockDrift:       "уход часов пульта",
			alert.KindEdgeClock:        "неверные часы устройства",
			alert.KindOutboxBacklog:    "копятся неотправленные оценки",
			alert.KindOutdatedFirmware: "устаревшая прошивка",
			alert.KindWarrantyEnd:      "истекает гарантия",
			alert.KindReplacementDue:   "пора заменить пульт",
			alert.KindNegativeVote:     "негативная оценка",
			alert.KindNegativeStreak:   "серия негативных оценок",
			alert.KindSatisfactionDrop: "падение удовлетворённости",
			alert.KindPositiveStreak:   "серия положительных оценок",
			alert.KindIncidentOverdue:  "просроченный инцидент",
		},
		severities: map[alert.Severity]string{
			alert.SeverityInfo: "информация", alert.SeverityWarning: "предупреждение", alert.SeverityCritical: "критично",
		},
		states: map[alert.State]string{
			alert.StateFiring: "активно", alert.StateAcknowledged: "подтверждено", alert.StateResolved: "решено",
		},
		min: "мин", sec: "с",
	},
}
