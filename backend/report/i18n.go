package report

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Langs are the languages a report is written in.
var Langs = []string{"en", "bg", "ru"}

// words are the report's texts by key, per language.
var words = map[string]map[string]string{
	"title":         {"en": "Customer satisfaction report", "bg": "Отчет за удовлетвореността на клиентите", "ru": "Отчёт об удовлетворённости клиентов"},
	"scope":         {"en": "Scope", "bg": "Обхват", "ru": "Охват"},
	"all":           {"en": "All organisations", "bg": "Всички организации", "ru": "Все организации"},
	"org":           {"en": "Organisation", "bg": "Организация", "ru": "Организация"},
	"site":          {"en": "Site", "bg": "Обект", "ru": "Объект"},
	"operator":      {"en": "Operator", "bg": "Служител", "ru": "Сотрудник"},
	"service":       {"en": "Service", "bg": "Услуга", "ru": "Услуга"},
	"period":        {"en": "Period", "bg": "Период", "ru": "Период"},
	"generated":     {"en": "Generated", "bg": "Изготвен", "ru": "Сформирован"},
	"so_far":        {"en": "counted until", "bg": "преброено до", "ru": "учтено до"},
	"summary":       {"en": "Summary", "bg": "Обобщение", "ru": "Сводка"},
	"figure":        {"en": "Figure", "bg": "Показател", "ru": "Показатель"},
	"this":          {"en": "This period", "bg": "Този период", "ru": "Этот период"},
	"prev":          {"en": "Previous", "bg": "Предходен", "ru": "Предыдущий"},
	"change":        {"en": "Change", "bg": "Промяна", "ru": "Изменение"},
	"votes":         {"en": "Votes", "bg": "Гласове", "ru": "Голоса"},
	"satisfied":     {"en": "Satisfied", "bg": "Доволни", "ru": "Довольны"},
	"negative":      {"en": "Negative", "bg": "Недоволни", "ru": "Недовольны"},
	"mean":          {"en": "Mean score (1-5)", "bg": "Средна оценка (1-5)", "ru": "Средняя оценка (1-5)"},
	"activations":   {"en": "Services (activations)", "bg": "Обслужвания (активации)", "ru": "Обслуживания (активации)"},
	"participation": {"en": "Participation", "bg": "Участие", "ru": "Участие"},
	"target":        {"en": "target", "bg": "цел", "ru": "цель"},
	"service_mean":  {"en": "Mean service time", "bg": "Средно време за обслужване", "ru": "Среднее время обслуживания"},
	"scores":        {"en": "Votes by score", "bg": "Гласове по оценка", "ru": "Голоса по оценкам"},
	"score":         {"en": "Score", "bg": "Оценка", "ru": "Оценка"},
	"trend":         {"en": "Satisfied share by day", "bg": "Дял доволни по дни", "ru": "Доля довольных по дням"},
	"by_site":       {"en": "Satisfied share by site", "bg": "Дял доволни по обекти", "ru": "Доля довольных по объектам"},
	"heat":          {"en": "Votes by hour of week", "bg": "Гласове по час от седмицата", "ru": "Голоса по часам недели"},
	"ranking_sites": {"en": "Ranking of sites", "bg": "Класиране на обектите", "ru": "Рейтинг объектов"},
	"ranking_ops":   {"en": "Ranking of operators", "bg": "Класиране на служителите", "ru": "Рейтинг сотрудников"},
	"rank":          {"en": "Rank", "bg": "Място", "ru": "Место"},
	"overall":       {"en": "overall", "bg": "общо", "ru": "в целом"},
	"mean_short":    {"en": "Mean", "bg": "Средна", "ru": "Средняя"},
	"heat_note":     {"en": "The darker the cell, the more votes; the figure is the satisfied share in percent.", "bg": "Колкото по-тъмна е клетката, толкова повече гласове; числото е делът доволни в проценти.", "ru": "Чем темнее ячейка, тем больше голосов; число — доля довольных в процентах."},
	"fair":          {"en": "Fair share", "bg": "Кориг. дял", "ru": "Скорр. доля"},
	"fair_note":     {"en": "Ranked by the satisfied share pulled toward the overall share by 20 votes, so that a few lucky votes do not win.", "bg": "Класирането е по дела доволни, приближен към общия с тежест 20 гласа, за да не печелят няколко случайни гласа.", "ru": "Рейтинг по доле довольных, приближенной к общей с весом 20 голосов, чтобы не побеждали несколько случайных голосов."},
	"notices":       {"en": "Negative-vote notices", "bg": "Сигнали за негативни оценки", "ru": "Уведомления о негативных оценках"},
	"notices_n":     {"en": "Notices", "bg": "Сигнали", "ru": "Уведомления"},
	"acked":         {"en": "Acknowledged", "bg": "Потвърдени", "ru": "Подтверждены"},
	"ack_median":    {"en": "Median time to acknowledge", "bg": "Медианно време до потвърждение", "ru": "Медианное время до подтверждения"},
	"ack_max":       {"en": "Longest time to acknowledge", "bg": "Най-дълго време до потвърждение", "ru": "Наибольшее время до подтверждения"},
	"truncated":     {"en": "only the latest 1000 notices counted", "bg": "преброени са само последните 1000 сигнала", "ru": "учтены только последние 1000 уведомлений"},
	"health":        {"en": "Device health", "bg": "Състояние на устройствата", "ru": "Состояние устройств"},
	"devices":       {"en": "Keypads reporting", "bg": "Активни пултове", "ru": "Активные пульты"},
	"availability":  {"en": "Availability (hours with heartbeat)", "bg": "Наличност (часове със сигнал)", "ru": "Доступность (часы с сигналом)"},
	"findings":      {"en": "Open findings", "bg": "Открити проблеми", "ru": "Открытые проблемы"},
	"reminders":     {"en": "Reminders due (warranty, replacement)", "bg": "Напомняния (гаранция, подмяна)", "ru": "Напоминания (гарантия, замена)"},
	"no_data":       {"en": "No votes in this period.", "bg": "Няма гласове за този период.", "ru": "За этот период голосов нет."},
	"none":          {"en": "none", "bg": "няма", "ru": "нет"},
	"day":           {"en": "Day", "bg": "Ден", "ru": "День"},
	"page":          {"en": "Page", "bg": "Страница", "ru": "Страница"},
	"min":           {"en": "min", "bg": "мин", "ru": "мин"},
	"sheet_summary": {"en": "Summary", "bg": "Обобщение", "ru": "Сводка"},
	"sheet_sites":   {"en": "Sites", "bg": "Обекти", "ru": "Объекты"},
	"sheet_ops":     {"en": "Operators", "bg": "Служители", "ru": "Сотрудники"},
	"sheet_days":    {"en": "Days", "bg": "Дни", "ru": "Дни"},
	"sheet_hours":   {"en": "Hour of week", "bg": "Час от седмицата", "ru": "Час недели"},
	"hour":          {"en": "Hour", "bg": "Час", "ru": "Час"},
	"weekday":       {"en": "Weekday", "bg": "Ден от седмицата", "ru": "День недели"},
	"kind_week":     {"en": "Week", "bg": "Седмица", "ru": "Неделя"},
	"kind_month":    {"en": "Month", "bg": "Месец", "ru": "Месяц"},
	"kind_quarter":  {"en": "Quarter", "bg": "Тримесечие", "ru": "Квартал"},
	"kind_today":    {"en": "Today", "bg": "Днес", "ru": "Сегодня"},
	"kind_custom":   {"en": "Custom", "bg": "Период", "ru": "Период"},
	"mail_subject":  {"en": "Satisfaction report", "bg": "Отчет за удовлетвореността", "ru": "Отчёт об удовлетворённости"},
	"mail_body":     {"en": "The report is attached.", "bg": "Отчетът е приложен.", "ru": "Отчёт во вложении."},
	"vs_prev":       {"en": "vs previous period", "bg": "спрямо предходния период", "ru": "к предыдущему периоду"},
	"pp":            {"en": "pp", "bg": "п.п.", "ru": "п.п."},
	"below_target":  {"en": "below the 70% target", "bg": "под целта от 70%", "ru": "ниже цели 70%"},
	"meets_target":  {"en": "meets the 70% target", "bg": "отговаря на целта от 70%", "ru": "соответствует цели 70%"},
}

var months = map[string][12]string{
	"en": {"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"},
	// Genitive forms, as dates are written ("5 декември 2026").
	"bg": {"януари", "февруари", "март", "април", "май", "юни", "юли", "август", "септември", "октомври", "ноември", "декември"},
	"ru": {"января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября", "ноября", "декабря"},
}

// monthsAlone are month names standing alone ("Декабрь 2026").
var monthsAlone = map[string][12]string{
	"en": months["en"],
	"bg": {"Януари", "Февруари", "Март", "Април", "Май", "Юни", "Юли", "Август", "Септември", "Октомври", "Ноември", "Декември"},
	"ru": {"Январь", "Февраль", "Март", "Апрель", "Май", "Июнь", "Июль", "Август", "Сентябрь", "Октябрь", "Ноябрь", "Декабрь"},
}

var weekdays = map[string][7]string{ // Monday first
	"en": {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"},
	"bg": {"Пн", "Вт", "Ср", "Чт", "Пт", "Сб", "Нд"},
	"ru": {"Пн", "Вт", "Ср", "Чт", "Пт", "Сб", "Вс"},
}

// loc formats in one language.
type loc struct{ lang string }

func (l loc) t(key string) string {
	if w, ok := words[key][l.lang]; ok {
		return w
	}
	return words[key]["en"]
}

// date writes a day as people of the language do: "5 December 2026",
// "5 декември 2026 г.", "5 декабря 2026 г.".
func (l loc) date(t time.Time) string {
	s := fmt.Sprintf("%d %s %d", t.Day(), months[l.lang][t.Month()-1], t.Year())
	if l.lang != "en" {
		s += " г."
	}
	return s
}

// short is a short day for chart axes and tables: 05.12 or 05/12.
func (l loc) short(t time.Time) string {
	if l.lang == "en" {
		return t.Format("2 Jan")
	}
	return t.Format("02.01")
}

// dateTime adds the time of day.
func (l loc) dateTime(t time.Time) string { return l.date(t) + " " + t.Format("15:04 MST") }

// period names a period: "Week 49, 30 November – 6 December 2026",
// "December 2026", "Q4 2026".
func (l loc) period(p Period) string {
	last := p.End.Add(-time.Nanosecond)
	switch p.Kind {
	case Month:
		return fmt.Sprintf("%s %d", monthsAlone[l.lang][p.Start.Month()-1], p.Start.Year())
	case Quarter:
		return fmt.Sprintf("%s %d, %d", l.t("kind_quarter"), (int(p.Start.Month())-1)/3+1, p.Start.Year())
	case Week:
		_, w := p.Start.ISOWeek()
		return fmt.Sprintf("%s %d: %s – %s", l.t("kind_week"), w, l.date(p.Start), l.date(last))
	case Today:
		return l.date(p.Start)
	}
	return l.date(p.Start) + " – " + l.date(last)
}

// num formats an integer with the language's thousands separator.
func (l loc) num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	sep := ","
	if l.lang != "en" {
		sep = "\u00a0" // no-break space
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString(sep)
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// dec formats a decimal with the language's decimal mark.
func (l loc) dec(v float64, places int) string {
	s := strconv.FormatFloat(v, 'f', places, 64)
	if l.lang != "en" {
		s = strings.Replace(s, ".", ",", 1)
	}
	return s
}

// pct formats a share as a percentage with one decimal: 84.3% / 84,3 %.
func (l loc) pct(v float64) string {
	if l.lang == "en" {
		return l.dec(100*v, 1) + "%"
	}
	return l.dec(100*v, 1) + "\u00a0%"
}

// opt formats a ratio that may be undefined as "–".
func (l loc) opt(v float64, ok bool, f func(float64) string) string {
	if !ok || math.IsNaN(v) {
		return "–"
	}
	return f(v)
}

// dur formats a duration in minutes (hours past two).
func (l loc) dur(d time.Duration) string {
	if d >= 2*time.Hour {
		return l.dec(d.Hours(), 1) + " h"
	}
	return l.dec(d.Minutes(), 1) + " " + l.t("min")
}

// delta formats a change in percentage points with its sign.
func (l loc) delta(cur, prev float64, ok bool) string {
	if !ok {
		return "–"
	}
	d := 100 * (cur - prev)
	sign := "+"
	if d < 0 {
		sign = "−"
		d = -d
	}
	return sign + l.dec(d, 1) + " " + l.t("pp")
}

// MailText is the subject and text of the e-mail a report is attached to,
// in the request's language.
func MailText(r Request) (subject, body string) {
	l := loc{r.Lang}
	scope := r.Org
	if r.Site != "" {
		scope += " / " + r.Site
	}
	if r.Operator != "" {
		scope += " / " + r.Operator
	}
	if scope == "" {
		scope = l.t("all")
	}
	subject = l.t("mail_subject") + ": " + scope + ", " + l.period(r.Period)
	body = l.t("title") + "\n" + l.t("scope") + ": " + scope + "\n" + l.t("period") + ": " + l.period(r.Period) + "\n\n" +
		l.t("mail_body") + "\n\n-- \nSemko\n"
	return subject, body
}
