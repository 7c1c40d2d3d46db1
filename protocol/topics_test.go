package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestTopicRoundTrip(t *testing.T) {
	devices := []string{"kp-0001", "a", "A.b_c-9", strings.Repeat("x", MaxDeviceIDLen)}
	for _, kind := range Kinds() {
		for _, device := range devices {
			t.Run(string(kind)+"/"+device, func(t *testing.T) {
				topic := DeviceTopic(device, kind)
				if want := "semko/v1/devices/" + device + "/" + string(kind); topic != want {
					t.Fatalf("DeviceTopic = %q, want %q", topic, want)
				}
				got, err := ParseTopic(topic)
				if err != nil {
					t.Fatalf("ParseTopic(%q): %v", topic, err)
				}
				if got != (Topic{Device: device, Kind: kind}) {
					t.Fatalf("ParseTopic(%q) = %+v", topic, got)
				}
				if got.String() != topic {
					t.Fatalf("String() = %q, want %q", got.String(), topic)
				}
			})
		}
	}
}

func TestParseTopicRejects(t *testing.T) {
	tests := []struct {
		name  string
		topic string
		want  error
	}{
		{"empty", "", ErrNotSemko},
		{"other root", "acme/v1/devices/kp-1/vote", ErrNotSemko},
		{"other version", "semko/v2/devices/kp-1/vote", ErrNotSemko},
		{"root case", "Semko/v1/devices/kp-1/vote", ErrNotSemko},
		{"leading slash", "/semko/v1/devices/kp-1/vote", ErrNotSemko},
		{"not devices", "semko/v1/sites/kp-1/vote", ErrNotSemko},
		{"root only", "semko/v1/devices", ErrNotSemko},
		{"sys", "$SYS/broker/clients", ErrNotSemko},
		{"shared", "$share/semko/semko/v1/devices/kp-1/vote", ErrNotSemko},
		{"no kind", "semko/v1/devices/kp-1", ErrUnknownKind},
		{"empty kind", "semko/v1/devices/kp-1/", ErrUnknownKind},
		{"unknown kind", "semko/v1/devices/kp-1/votes", ErrUnknownKind},
		{"kind case", "semko/v1/devices/kp-1/Vote", ErrUnknownKind},
		{"half kind", "semko/v1/devices/kp-1/cmd/", ErrUnknownKind},
		{"other sub-kind", "semko/v1/devices/kp-1/cmd/request", ErrUnknownKind},
		{"extra level", "semko/v1/devices/kp-1/vote/extra", ErrUnknownKind},
		{"trailing slash", "semko/v1/devices/kp-1/heartbeat/", ErrUnknownKind},
		{"kind wildcard +", "semko/v1/devices/kp-1/+", ErrUnknownKind},
		{"kind wildcard #", "semko/v1/devices/kp-1/#", ErrUnknownKind},
		{"empty device", "semko/v1/devices//vote", ErrDeviceID},
		{"device wildcard +", "semko/v1/devices/+/vote", ErrDeviceID},
		{"device wildcard #", "semko/v1/devices/#/vote", ErrDeviceID},
		{"device with space", "semko/v1/devices/kp 1/vote", ErrDeviceID},
		{"device with dollar", "semko/v1/devices/$kp/vote", ErrDeviceID},
		{"device non-ascii", "semko/v1/devices/kp-ü/vote", ErrDeviceID},
		{"device nul", "semko/v1/devices/kp\x00/vote", ErrDeviceID},
		{"device comma", "semko/v1/devices/kp,1/vote", ErrDeviceID},
		{"device equals", "semko/v1/devices/kp=1/vote", ErrDeviceID},
		{"device oversized", "semko/v1/devices/" + strings.Repeat("x", MaxDeviceIDLen+1) + "/vote", ErrDeviceID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTopic(tt.topic)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseTopic(%q) = %+v, %v; want %v", tt.topic, got, err, tt.want)
			}
			if got != (Topic{}) {
				t.Fatalf("ParseTopic(%q) returned %+v with its error", tt.topic, got)
			}
		})
	}
}

func TestValidateDeviceID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"kp-0001", true},
		{"0", true},
		{"Site_3.counter-12", true},
		{strings.Repeat("z", MaxDeviceIDLen), true},
		{"", false},
		{strings.Repeat("z", MaxDeviceIDLen+1), false},
		{"a/b", false},
		{"a+b", false},
		{"a#b", false},
		{"a b", false},
		{"a\tb", false},
		{"a\"b", false},
		{"ключ", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			err := ValidateDeviceID(tt.id)
			if tt.ok && err != nil {
				t.Fatalf("ValidateDeviceID(%q): %v", tt.id, err)
			}
			if !tt.ok && !errors.Is(err, ErrDeviceID) {
				t.Fatalf("ValidateDeviceID(%q) = %v, want ErrDeviceID", tt.id, err)
			}
		})
	}
}

func TestKindsPartition(t *testing.T) {
	wantUp := map[Kind]bool{
		KindVote: true, KindActivation: true, KindHeartbeat: true, KindStatus: true,
		KindCommandResult: true, KindConfigApplied: true,
	}
	wantDown := map[Kind]bool{KindConfig: true, KindActivate: true, KindCommand: true}
	wantRetained := map[Kind]bool{KindStatus: true, KindConfig: true}

	all := Kinds()
	if len(all) != len(wantUp)+len(wantDown) {
		t.Fatalf("Kinds() has %d kinds, want %d", len(all), len(wantUp)+len(wantDown))
	}
	seen := map[Kind]bool{}
	upstreamDone := false
	for _, k := range all {
		t.Run(string(k), func(t *testing.T) {
			if seen[k] {
				t.Fatalf("kind listed twice")
			}
			seen[k] = true
			if k.Upstream() == k.Downstream() {
				t.Fatalf("Upstream()=%v Downstream()=%v: each kind must be exactly one", k.Upstream(), k.Downstream())
			}
			if k.Upstream() != wantUp[k] || k.Downstream() != wantDown[k] {
				t.Fatalf("direction up=%v down=%v, want up=%v down=%v", k.Upstream(), k.Downstream(), wantUp[k], wantDown[k])
			}
			if k.Retained() != wantRetained[k] {
				t.Fatalf("Retained()=%v, want %v", k.Retained(), wantRetained[k])
			}
			// Kinds documents "upstream first".
			if k.Downstream() {
				upstreamDone = true
			} else if upstreamDone {
				t.Fatalf("upstream kind after a downstream one")
			}
		})
	}
	for _, k := range []Kind{"", "votes", "cmd/", "#"} {
		if k.Upstream() || k.Downstream() || k.Retained() {
			t.Errorf("unknown kind %q classified", k)
		}
	}
}

func TestKindsReturnsACopy(t *testing.T) {
	a := Kinds()
	a[0] = "tampered"
	if Kinds()[0] == "tampered" {
		t.Fatal("Kinds() exposes the package's slice")
	}
}

func TestFilters(t *testing.T) {
	for _, kind := range Kinds() {
		if !kind.Upstream() {
			continue
		}
		t.Run(string(kind), func(t *testing.T) {
			want := "semko/v1/devices/+/" + string(kind)
			if got := UpstreamFilter(kind); got != want {
				t.Fatalf("UpstreamFilter = %q, want %q", got, want)
			}
		})
	}
	got := DeviceFilter("kp-9")
	if len(got) != 3 {
		t.Fatalf("DeviceFilter = %q, want the 3 downstream topics", got)
	}
	for _, topic := range got {
		p, err := ParseTopic(topic)
		if err != nil || p.Device != "kp-9" || !p.Kind.Downstream() {
			t.Errorf("DeviceFilter topic %q parses to %+v, %v", topic, p, err)
		}
	}
}

func TestAlertTopic(t *testing.T) {
	tests := []struct {
		org, site, kind string
		want            string
	}{
		{"sofia", "centre", "negative_vote", "semko/v1/alerts/sofia/centre/negative_vote"},
		{"sofia", "", "satisfaction_drop", "semko/v1/alerts/sofia/_/satisfaction_drop"},
		{"", "", "offline", "semko/v1/alerts/_/_/offline"},
		{"so/fia", "c+", "#", "semko/v1/alerts/_/_/_"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := AlertTopic(tt.org, tt.site, tt.kind); got != tt.want {
				t.Fatalf("AlertTopic(%q, %q, %q) = %q, want %q", tt.org, tt.site, tt.kind, got, tt.want)
			}
		})
	}
	filters := map[[2]string]string{
		{"", ""}:            "semko/v1/alerts/#",
		{"sofia", ""}:       "semko/v1/alerts/sofia/#",
		{"sofia", "centre"}: "semko/v1/alerts/sofia/centre/#",
	}
	for in, want := range filters {
		if got := AlertFilter(in[0], in[1]); got != want {
			t.Errorf("AlertFilter(%q, %q) = %q, want %q", in[0], in[1], got, want)
		}
	}
}
