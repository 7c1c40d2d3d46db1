package email

import (
	"context"
	"fmt"
	"html"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/notify/templates"
)

// Notifier is the e-mail channel of the alert manager: it renders a notice
// in the receiver's language and mails it to the receiver's addresses.
type Notifier struct {
	sender *Sender
	render *templates.Renderer
}

// NewNotifier joins a sender and the templates.
func NewNotifier(s *Sender, r *templates.Renderer) *Notifier {
	return &Notifier{sender: s, render: r}
}

var _ alert.Notifier = (*Notifier)(nil)

// Notify mails n to n.Receiver.Email. A receiver without addresses is
// nothing to do.
func (n *Notifier) Notify(ctx context.Context, notice alert.Notice) (retry bool, err error) {
	if len(notice.Receiver.Email) == 0 {
		return false, nil
	}
	msg, err := n.render.Render(notice)
	if err != nil {
		return false, fmt.Errorf("email %s: %w", notice.Receiver.Name, err)
	}
	err = n.sender.Send(ctx, Message{
		To:        notice.Receiver.Email,
		Subject:   msg.Subject,
		Text:      msg.Text,
		HTML:      asHTML(msg.Text, msg.Lang),
		Date:      notice.Time,
		MessageID: notice.ID,
	})
	if err != nil {
		return Retryable(err), fmt.Errorf("email %s: %w", notice.Receiver.Name, err)
	}
	return false, nil
}

// asHTML wraps the text body so HTML mail clients show it in a fixed-width
// font, keeping the aligned columns of the templates.
func asHTML(text, lang string) string {
	return `<!DOCTYPE html><html lang="` + html.EscapeString(lang) + `"><head><meta charset="utf-8"></head>` +
		`<body><pre style="font-family:monospace;font-size:14px">` + html.EscapeString(text) + "</pre></body></html>\n"
}
