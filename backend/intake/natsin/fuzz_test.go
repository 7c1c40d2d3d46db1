package natsin_test

import (
	"strings"
	"testing"

	"github.com/semko/semko/backend/intake/natsin"
	"github.com/semko/semko/protocol"
)

// FuzzTopic: any subject the stream delivers maps to a topic or is
// refused, never panics, and a valid device topic survives the round trip
// topic -> subject -> topic.
func FuzzTopic(f *testing.F) {
	f.Add("$MQTT.msgs.semko.v1.devices.kp-1.vote")
	f.Add("$MQTT.msgs.semko.v1.devices.kp-1.cmd.result")
	f.Add("$MQTT.msgs.")
	f.Add("semko.v1.devices.kp-1.vote")
	f.Fuzz(func(t *testing.T, subject string) {
		topic, ok := natsin.Topic(subject)
		if !ok {
			return
		}
		if strings.Contains(topic, ".") {
			t.Fatalf("topic %q still has dots", topic)
		}
		if pt, err := protocol.ParseTopic(topic); err == nil && !strings.Contains(pt.Device, ".") {
			back, ok := natsin.Topic(natsin.StreamPrefix + natsin.Subject(pt.String()))
			if !ok || back != pt.String() {
				t.Fatalf("round trip %q -> %q", pt.String(), back)
			}
		}
	})
}
