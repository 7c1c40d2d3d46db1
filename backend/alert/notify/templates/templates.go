// Package templates turns an alert notice into the words a person reads:
// a subject line and a plain-text body, in the recipient's language
// (Bulgarian, Russian or English), with times in the site's time zone.
//
// Notices fall into four groups, each with its own template: negative
// ratings (told to the counter's responsible person at once), device faults
// (for field technicians), lifecycle reminders (warranty, replacement) and
// escalations (any kind, sent to the next level when nobody acknowledged in
// time). The templates live in tmpl/<lang>.tmpl; every channel (e-mail,
// webhook, MQTT) renders through this package so the words are the same
// everywhere.
package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/semko/semko/backend/alert"
)

// Keys of alert.Alert.Details that the templates read, as the rating
// watcher, diagnostics and lifecycle reminders fill them. A missing key
// leaves its line out; nothing else is required.
const (
	DetailScore        = "score"         // the rating pressed, e.g. "1"
	DetailSiteName     = "site_name"     // display names; ids are shown when absent
	DetailCounterName  = "counter_name"  //
	DetailOperator     = "operator"      // operator id
	DetailOperatorName = "operator_name" // operator's display name
	DetailService      = "service"       // service id
	DetailServiceName  = "service_name"  // service's display name
	DetailServiceS     = "service_s"     // service duration in whole seconds
	DetailVotes        = "votes"         // votes in the window of a satisfaction drop
	DetailRun          = "run"           // length of a negative or positive run
	DetailShare        = "share"         // satisfied share as a fraction, "0.650"
	DetailThreshold    = "threshold"     // the share's threshold as a fraction
	DetailSoonest      = "soonest"       // YYYY-MM-DD of the earliest warranty end or replacement
	DetailDevices      = "devices"       // comma-separated keypads a reminder covers
	// The incident desk's overdue alerts (backend/incident).
	DetailIncident   = "incident"   // the incident's number
	DetailDepartment = "department" // the department's display name
	DetailLink       = "link"       // the incident's page
	DetailType       = "type"       // the incident type's id
	DetailPassedTo   = "passed_to"  // the responsible account
)

// Group is the template a notice is written with.
type Group string

// Template groups.
const (
	GroupNegative   Group = "negative"
	GroupDevice     Group = "device"
	GroupLifecycle  Group = "lifecycle"
	GroupEscalation Group = "escalation"
	GroupIncident   Group = "incident" // an incident of the desk missed its deadline
)

// Groups lists every group, for tests and tooling.
func Groups() []Group {
	return []Group{GroupNegative, GroupDevice, GroupLifecycle, GroupEscalation, GroupIncident}
}

// DefaultLang is used when a notice's language has no templates.
const DefaultLang = "en"

// Langs lists the languages with templates.
func Langs() []string { return []string{"bg", "en", "ru"} }

// GroupOf picks the template for a notice: escalations first (whatever
// their kind, the reader must learn that someone else missed a deadline),
// then by kind.
func GroupOf(n alert.Notice) Group {
	if n.Escalation > 0 {
		return GroupEscalation
	}
	switch n.Kind {
	case alert.KindNegativeVote, alert.KindNegativeStreak, alert.KindSatisfactionDrop, alert.KindPositiveStreak:
		return GroupNegative
	case alert.KindWarrantyEnd, alert.KindReplacementDue:
		return GroupLifecycle
	case alert.KindIncidentOverdue:
		return GroupIncident
	}
	return GroupDevice
}

// Message is a rendered notice.
type Message struct {
	Subject string
	Text    string
	Lang    string // the language actually used
	// Links are the alerts' console pages (also at the end of Text);
	// empty without a console URL.
	Links []string
}

// ErrTemplate wraps a failure to render: a bug in a template, never in the
// notice, so callers treat it as permanent.
var ErrTemplate = errors.New("render notice")

//go:embed tmpl/*.tmpl
var files embed.FS

// Renderer renders notices. It is safe for concurrent use.
type Renderer struct {
	zone    func(alert.Subject) *time.Location
	sets    map[string]*template.Template
	console string // base URL of the console; see WithConsole
}

// New parses the embedded templates. zone gives the time zone of an alert's
// site (from the registry); nil or a nil result means UTC.
func New(zone func(alert.Subject) *time.Location) (*Renderer, error) {
	r := &Renderer{zone: zone, sets: map[string]*template.Template{}}
	for _, lang := range Langs() {
		t, err := template.New(lang).Funcs(funcs(lang)).Option("missingkey=zero").ParseFS(files, "tmpl/"+lang+".tmpl")
		if err != nil {
			return nil, fmt.Errorf("parse %s templates: %w", lang, err)
		}
		for _, g := range Groups() {
			for _, part := range []string{"subject", "body"} {
				if t.Lookup(string(g)+"."+part) == nil {
					return nil, fmt.Errorf("%s templates: %s.%s missing", lang, g, part)
				}
			}
		}
		r.sets[lang] = t
	}
	return r, nil
}

// data is what a template sees.
type data struct {
	alert.Notice
	Zone  *time.Location
	First alert.Alert // the group's first alert; templates about one subject use it
	More  int         // how many alerts beyond the first
}

// Render writes n in its language (n.Lang, else the receiver's, else
// English).
func (r *Renderer) Render(n alert.Notice) (Message, error) {
	lang := pickLang(n.Lang, n.Receiver.Lang)
	d := data{Notice: n, Zone: time.UTC}
	if len(n.Alerts) > 0 {
		d.First, d.More = n.Alerts[0], len(n.Alerts)-1
		if r.zone != nil {
			if loc := r.zone(d.First.Subject); loc != nil {
				d.Zone = loc
			}
		}
	}
	g := GroupOf(n)
	t := r.sets[lang]
	var subj, body bytes.Buffer
	if err := t.ExecuteTemplate(&subj, string(g)+".subject", d); err != nil {
		return Message{}, fmt.Errorf("%w: %s %s subject: %v", ErrTemplate, lang, g, err)
	}
	if err := t.ExecuteTemplate(&body, string(g)+".body", d); err != nil {
		return Message{}, fmt.Errorf("%w: %s %s body: %v", ErrTemplate, lang, g, err)
	}
	links := r.links(d)
	return Message{
		// A subject is one header line: fold whatever a template or a
		// message put there into single spaces.
		Subject: strings.Join(strings.Fields(subj.String()), " "),
		Text:    withLinks(tidy(body.String()), lang, links),
		Lang:    lang,
		Links:   links,
	}, nil
}

func pickLang(langs ...string) string {
	for _, l := range langs {
		l = strings.ToLower(strings.TrimSpace(l))
		if l, _, _ = strings.Cut(l, "-"); slices.Contains(Langs(), l) {
			return l
		}
	}
	return DefaultLang
}

// tidy trims trailing spaces and collapses runs of blank lines that
// optional template lines leave behind.
func tidy(s string) string {
	var out []string
	blank := true // drop leading blank lines
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimRight(line, " \t")
		if line == "" {
			if blank {
				continue
			}
			blank = true
		} else {
			blank = false
		}
		out = append(out, line)
	}
	return strings.TrimRight(strings.Join(out, "\n"), "\n") + "\n"
}

func funcs(lang string) template.FuncMap {
	l := labels[lang]
	return template.FuncMap{
		"kind": func(k alert.Kind) string {
			if s, ok := l.kinds[k]; ok {
				return s
			}
			return string(k)
		},
		"severity": func(s alert.Severity) string {
			if v, ok := l.severities[s]; ok {
				return v
			}
			return string(s)
		},
		"state": func(s alert.State) string {
			if v, ok := l.states[s]; ok {
				return v
			}
			return string(s)
		},
		// when formats t in the site's zone; the zero time prints as "-".
		"when": func(t time.Time, loc *time.Location) string {
			if t.IsZero() {
				return "-"
			}
			return t.In(loc).Format("2006-01-02 15:04 MST")
		},
		// capital upper-cases the first letter, for names that start a line.
		"capital": func(s string) string {
			r, n := utf8.DecodeRuneInString(s)
			return string(unicode.ToUpper(r)) + s[n:]
		},
		"detail": func(a alert.Alert, key string) string { return a.Details[key] },
		// percent renders a fraction ("0.653") as a whole percentage.
		"percent": func(frac string) string {
			f, err := strconv.ParseFloat(frac, 64)
			if err != nil {
				return ""
			}
			return strconv.FormatFloat(100*f, 'f', 0, 64)
		},
		// duration renders whole seconds as "4 min 10 s" in the language.
		"duration": func(secs string) string {
			n, err := strconv.Atoi(secs)
			if err != nil || n < 0 {
				return ""
			}
			if n < 60 {
				return fmt.Sprintf("%d %s", n, l.sec)
			}
			return fmt.Sprintf("%d %s %d %s", n/60, l.min, n%60, l.sec)
		},
	}
}
