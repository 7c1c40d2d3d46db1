package influx

import (
	"testing"
	"time"
)

func TestAlertLine(t *testing.T) {
	ts := time.Unix(0, 1795512615250000000)
	tests := []struct {
		name string
		in   Alert
		want string
	}{
		{"device finding", Alert{Kind: "stuck_key", Severity: "warning", State: "firing", Org: "acme", Site: "sofia-1", Device: "kp-0001", Message: `key 5 pressed 40 times, "no" activations`, Time: ts},
			`alert,device=kp-0001,kind=stuck_key,org=acme,severity=warning,site=sofia-1 state="firing",message="key 5 pressed 40 times, \"no\" activations" 1795512615250000000`},
		{"site reminder, no device", Alert{Kind: "warranty_end", Severity: "info", State: "resolved", Org: "acme", Site: "s 1", Time: ts},
			`alert,kind=warranty_end,org=acme,severity=info,site=s\ 1 state="resolved" 1795512615250000000`},
		{"state defaults to firing", Alert{Kind: "offline", Time: ts},
			`alert,kind=offline state="firing" 1795512615250000000`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := AlertLine(nil, tc.in)
			if string(got) != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
			m := parseOne(t, got)
			if m.Name() != MeasurementAlert {
				t.Fatalf("measurement %q", m.Name())
			}
		})
	}
}

// FuzzAlertLine checks that any message and tag values give one parseable
// point that keeps its state field.
func FuzzAlertLine(f *testing.F) {
	f.Add("offline", "acme", "kp-1", "no heartbeat for 3m")
	f.Add(`a\`, "x,y=z", "new\nline", `quote"back\`)
	f.Fuzz(func(t *testing.T, kind, org, device, message string) {
		line := AlertLine(nil, Alert{Kind: kind, Org: org, Device: device, Message: message, State: "firing", Time: time.Unix(1, 0)})
		m := parseOne(t, line)
		if s, ok := fieldOf(m, "state"); !ok || s != "firing" {
			t.Fatalf("state %q from %q", s, line)
		}
	})
}
