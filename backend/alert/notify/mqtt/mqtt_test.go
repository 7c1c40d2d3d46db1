package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/notify/templates"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/protocol"
)

const observerUser, observerPass = "tech-phone", "observer password"

// startBroker runs the real embedded broker on loopback with one observer
// account, as a technician's app would use.
func startBroker(t *testing.T) *broker.Broker {
	t.Helper()
	hash, err := broker.HashSecret(observerPass)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := broker.NewCredentials([]broker.Credential{{Username: observerUser, Hash: hash, Role: broker.RoleObserver}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Options{TCPAddr: "127.0.0.1:0", Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

type got struct {
	topic string
	msg   Message
}

// subscribe connects an observer and returns the messages it receives.
func subscribe(t *testing.T, addr, filter string) <-chan got {
	t.Helper()
	ch := make(chan got, 16)
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(observerUser + "-1").
		SetUsername(observerUser).SetPassword(observerPass).SetProtocolVersion(4)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		var msg Message
		if err := json.Unmarshal(m.Payload(), &msg); err != nil {
			t.Errorf("payload: %v", err)
			return
		}
		// The version key is the contract's, as in every payload under
		// semko/v1 (protocol/README.md), not this struct's choice.
		var head map[string]any
		if err := json.Unmarshal(m.Payload(), &head); err != nil || head["v"] != 1.0 {
			t.Errorf(`payload has no "v": 1: %.120s`, m.Payload())
		}
		ch <- got{m.Topic(), msg}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return ch
}

func receive(t *testing.T, ch <-chan got) got {
	t.Helper()
	select {
	case g := <-ch:
		return g
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10 s")
		return got{}
	}
}

func TestObserverReceivesNotices(t *testing.T) {
	b := startBroker(t)
	ch := subscribe(t, b.Addr(), protocol.AlertFilter("sofia-mun", ""))
	render, err := templates.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	mq := New(b, render)

	tests := []struct {
		name      string
		group     templates.Group
		lang      string
		wantTopic string
		wantText  string
	}{
		{"negative vote in Bulgarian", templates.GroupNegative, "bg", "semko/v1/alerts/sofia-mun/mladost/negative_vote", "Иван Иванов"},
		{"device fault in Russian", templates.GroupDevice, "ru", "semko/v1/alerts/sofia-mun/mladost/stuck_key", "Залипшая кнопка"},
		{"escalation in English", templates.GroupEscalation, "en", "semko/v1/alerts/sofia-mun/mladost/offline", "Nobody acknowledged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := templates.Sample(tt.group, tt.lang)
			n.Receiver.MQTT = true
			if retry, err := mq.Notify(context.Background(), n); err != nil || retry {
				t.Fatalf("Notify = %v, %v", retry, err)
			}
			g := receive(t, ch)
			if g.topic != tt.wantTopic {
				t.Fatalf("topic %q, want %q", g.topic, tt.wantTopic)
			}
			if g.msg.Version != 1 || g.msg.ID != n.ID || g.msg.Lang != tt.lang || len(g.msg.Alerts) != len(n.Alerts) ||
				!strings.Contains(g.msg.Subject+g.msg.Text, tt.wantText) {
				t.Fatalf("message %+v", g.msg)
			}
		})
	}

	t.Run("receiver without MQTT publishes nothing", func(t *testing.T) {
		n := templates.Sample(templates.GroupNegative, "en")
		if retry, err := mq.Notify(context.Background(), n); err != nil || retry {
			t.Fatalf("Notify = %v, %v", retry, err)
		}
		// A marker published after it must be the next message seen.
		n.Receiver.MQTT, n.ID = true, "marker"
		if _, err := mq.Notify(context.Background(), n); err != nil {
			t.Fatal(err)
		}
		if g := receive(t, ch); g.msg.ID != "marker" {
			t.Fatalf("got %q before the marker", g.msg.ID)
		}
	})
}

func TestNotifyAfterBrokerClosedIsRetryable(t *testing.T) {
	b := startBroker(t)
	render, _ := templates.New(nil)
	b.Close()
	n := templates.Sample(templates.GroupDevice, "en")
	n.Receiver.MQTT = true
	retry, err := New(b, render).Notify(context.Background(), n)
	if !retry || !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
}

func TestEncodeStaysWithinMaxPayload(t *testing.T) {
	big := make([]alert.Alert, 200)
	for i := range big {
		big[i] = alert.Alert{ID: int64(i), Kind: alert.KindOffline, Message: strings.Repeat("м", 40)}
	}
	tests := []struct {
		name string
		msg  Message
	}{
		{"many alerts", Message{Version: 1, Document: templates.Document{Text: "x", Alerts: big}}},
		{"huge text", Message{Version: 1, Document: templates.Document{Text: strings.Repeat("ж", 10000)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := encode(tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > protocol.MaxPayload {
				t.Fatalf("%d bytes", len(b))
			}
			var m Message
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if m.Omitted+len(m.Alerts) != len(tt.msg.Alerts) {
				t.Fatalf("omitted %d + kept %d != %d", m.Omitted, len(m.Alerts), len(tt.msg.Alerts))
			}
		})
	}
}
