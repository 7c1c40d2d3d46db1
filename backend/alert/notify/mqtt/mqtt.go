// Package mqtt publishes alert notices on the embedded broker under
// semko/v1/alerts/<org>/<site>/<kind> (protocol.AlertTopic), where a
// technician's phone app or a wall display subscribed with an observer
// account sees them at once. Messages are QoS 1 and not retained: an app
// with a persistent session gets what it missed while offline, and a
// resolved alert is not replayed to every new subscriber.
package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/notify/templates"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/internal/textcut"
	"github.com/semko/semko/protocol"
)

// Publisher is the part of the broker this channel needs; *broker.Broker
// implements it.
type Publisher interface {
	Publish(topic string, payload []byte, retain bool, qos byte) error
}

// Message is the JSON payload an app receives: the notice document with
// its version "v", as in every payload under semko/v1
// (protocol/README.md); it changes only with incompatible changes, and
// fields may be added.
type Message struct {
	Version int `json:"v"`
	templates.Document
	// Omitted counts alerts left out to keep the payload within
	// protocol.MaxPayload; Text still names them.
	Omitted int `json:"omitted,omitempty"`
}

// Notifier is the MQTT channel of the alert manager. It is safe for
// concurrent use if the Publisher is.
type Notifier struct {
	pub    Publisher
	render *templates.Renderer
}

var _ alert.Notifier = (*Notifier)(nil)

// New returns the channel publishing through pub.
func New(pub Publisher, render *templates.Renderer) *Notifier {
	return &Notifier{pub: pub, render: render}
}

// Notify publishes n when its receiver asked for MQTT: one message per site
// among its alerts (a group normally shares one site).
func (m *Notifier) Notify(ctx context.Context, n alert.Notice) (retry bool, err error) {
	if !n.Receiver.MQTT {
		return false, nil
	}
	text, err := m.render.Render(n)
	if err != nil {
		return false, fmt.Errorf("mqtt %s: %w", n.Receiver.Name, err)
	}
	type site struct{ org, site string }
	var order []site
	bySite := map[site][]alert.Alert{}
	for _, a := range n.Alerts {
		k := site{a.Subject.Org, a.Subject.Site}
		if _, ok := bySite[k]; !ok {
			order = append(order, k)
		}
		bySite[k] = append(bySite[k], a)
	}
	if len(order) == 0 {
		order = append(order, site{})
	}
	for _, s := range order {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		payload, err := encode(Message{Version: 1, Document: templates.NewDocument(n, text, bySite[s])})
		if err != nil {
			return false, fmt.Errorf("mqtt %s: %w", n.Receiver.Name, err)
		}
		topic := protocol.AlertTopic(s.org, s.site, string(n.Kind))
		if err := m.pub.Publish(topic, payload, false, 1); err != nil {
			// A closing broker may be back after a restart; a refused
			// topic never will be.
			return !errors.Is(err, broker.ErrTopic), fmt.Errorf("mqtt publish %s: %w", topic, err)
		}
	}
	return false, nil
}

// encode marshals msg, dropping alert details from the end until it fits
// protocol.MaxPayload, the bound every Semko MQTT client can rely on.
func encode(msg Message) ([]byte, error) {
	for {
		b, err := json.Marshal(msg)
		if err != nil {
			return nil, fmt.Errorf("encode: %w", err)
		}
		if len(b) <= protocol.MaxPayload {
			return b, nil
		}
		if len(msg.Alerts) == 0 {
			// Only a runaway text gets here: cut it rather than lose the
			// notice.
			cut := len(msg.Text) - (len(b) - protocol.MaxPayload) - 16
			if cut <= 0 || len(msg.Text) == 0 {
				return nil, fmt.Errorf("encode: %d bytes over the %d byte bound", len(b), protocol.MaxPayload)
			}
			msg.Text = textcut.Cut(msg.Text, cut) + textcut.Ellipsis
			continue
		}
		msg.Alerts = msg.Alerts[:len(msg.Alerts)-1]
		msg.Omitted++
	}
}
