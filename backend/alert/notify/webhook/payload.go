package webhook

import (
	"encoding/json"
	"net/url"
	"strings"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/notify/templates"
)

// Format is the shape of the JSON body.
type Format string

const (
	// FormatAuto picks Slack or Teams by the URL's host, else FormatJSON.
	FormatAuto Format = ""
	// FormatJSON is Semko's own document (Payload), for integrations.
	FormatJSON Format = "json"
	// FormatSlack is a Slack incoming-webhook message ({"text": ...});
	// Mattermost and Rocket.Chat accept it too.
	FormatSlack Format = "slack"
	// FormatTeams is a message with an Adaptive Card, as Microsoft Teams
	// workflows (Power Automate "post to a channel when a webhook request
	// is received") expect.
	FormatTeams Format = "teams"
)

// FormatFor resolves FormatAuto for one URL.
func FormatFor(f Format, rawURL string) Format {
	if f != FormatAuto {
		return f
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return FormatJSON
	}
	host := strings.ToLower(u.Hostname())
	switch {
	case host == "hooks.slack.com":
		return FormatSlack
	case strings.HasSuffix(host, ".webhook.office.com"), strings.HasSuffix(host, ".logic.azure.com"),
		strings.HasSuffix(host, ".powerplatform.com"):
		return FormatTeams
	}
	return FormatJSON
}

// Payload is the FormatJSON body: the notice document with the webhook's
// version and the notice's group. Version changes only with incompatible
// changes; fields may be added.
type Payload struct {
	Version int    `json:"version"`
	Group   string `json:"group"`
	templates.Document
}

func encode(f Format, n alert.Notice, m templates.Message) ([]byte, error) {
	switch f {
	case FormatSlack:
		// A code block keeps the template's aligned columns.
		return json.Marshal(map[string]string{"text": "*" + m.Subject + "*\n```\n" + m.Text + "```"})
	case FormatTeams:
		card := map[string]any{
			"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
			"type":    "AdaptiveCard",
			"version": "1.4",
			"body": []map[string]any{
				{"type": "TextBlock", "text": m.Subject, "weight": "Bolder", "size": "Medium", "wrap": true},
				{"type": "TextBlock", "text": m.Text, "wrap": true, "fontType": "Monospace"},
			},
		}
		return json.Marshal(map[string]any{
			"type": "message",
			"attachments": []map[string]any{
				{"contentType": "application/vnd.microsoft.card.adaptive", "content": card},
			},
		})
	}
	return json.Marshal(Payload{Version: 1, Group: n.Group, Document: templates.NewDocument(n, m, n.Alerts)})
}
