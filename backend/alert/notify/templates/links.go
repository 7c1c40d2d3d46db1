package templates

import (
	"strconv"
	"strings"
)

// linkLabels introduce the console links at the end of a notice.
var linkLabels = map[string]string{
	"en": "Open in the console:",
	"bg": "Отворете в конзолата:",
	"ru": "Открыть в консоли:",
}

// maxLinks bounds the links of one notice: a group of many alerts links
// its first ones; the console's list shows the rest.
const maxLinks = 10

// WithConsole makes every notice end with the links to its alerts'
// console pages, <base>/alerts/<id>, so a technician goes from the e-mail
// (or webhook, or MQTT message) to the acknowledgement in two taps. An
// empty base adds no links. Call it before the renderer is used.
func (r *Renderer) WithConsole(base string) *Renderer {
	r.console = strings.TrimRight(base, "/")
	return r
}

// links returns the console links of the notice's alerts.
func (r *Renderer) links(d data) []string {
	if r.console == "" {
		return nil
	}
	var out []string
	for i, a := range d.Alerts {
		if i == maxLinks {
			break
		}
		out = append(out, r.console+"/alerts/"+strconv.FormatInt(a.ID, 10))
	}
	return out
}

func withLinks(text, lang string, links []string) string {
	if len(links) == 0 {
		return text
	}
	return text + "\n" + linkLabels[lang] + "\n" + strings.Join(links, "\n") + "\n"
}
