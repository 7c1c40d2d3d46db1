package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/protocol"
)

func TestAllowed(t *testing.T) {
	dev := Credential{Username: "kp-1", Role: RoleDevice}
	backend := Credential{Username: "svc", Role: RoleBackend}
	obs := Credential{Username: "app", Role: RoleObserver}
	bank := Credential{Username: "bank-app", Role: RoleObserver, Orgs: []string{"bank"}, Sites: []string{"muni-centre"}}
	own := func(k protocol.Kind) string { return protocol.DeviceTopic("kp-1", k) }
	tests := []struct {
		name  string
		cr    Credential
		topic string
		write bool
		want  bool
	}{
		{"device writes own vote", dev, own(protocol.KindVote), true, true},
		{"device writes own cmd result", dev, own(protocol.KindCommandResult), true, true},
		{"device writes own status", dev, own(protocol.KindStatus), true, true},
		{"device writes own config", dev, own(protocol.KindConfig), true, false},
		{"device writes another's vote", dev, protocol.DeviceTopic("kp-2", protocol.KindVote), true, false},
		{"device writes unknown kind", dev, protocol.Root + "/devices/kp-1/debug", true, false},
		{"device writes outside root", dev, "kp-1/vote", true, false},
		{"device reads own config", dev, own(protocol.KindConfig), false, true},
		{"device reads own activate", dev, own(protocol.KindActivate), false, true},
		{"device reads own vote", dev, own(protocol.KindVote), false, false},
		{"device reads with wildcard", dev, protocol.Root + "/devices/kp-1/#", false, false},
		{"device reads another's cmd", dev, protocol.DeviceTopic("kp-2", protocol.KindCommand), false, false},
		{"device reads the time beacon", dev, protocol.TimeTopic, false, true},
		{"device writes the time beacon", dev, protocol.TimeTopic, true, false},
		{"backend writes the time beacon", backend, protocol.TimeTopic, true, true},
		{"backend writes config", backend, own(protocol.KindConfig), true, true},
		{"backend writes outside root", backend, "other", true, false},
		{"backend reads all", backend, protocol.Root + "/#", false, true},
		{"backend shared read", backend, "$share/semko/" + protocol.UpstreamFilter(protocol.KindVote), false, true},
		{"backend reads everything", backend, "#", false, false},
		{"backend reads $SYS", backend, "$SYS/#", false, false},
		{"backend malformed share", backend, "$share/" + protocol.Root, false, false},
		{"prefix lookalike", backend, protocol.Root + "x/#", false, false},
		{"observer reads", obs, protocol.Root + "/alerts/#", false, true},
		{"observer reads one site's alerts", obs, protocol.AlertFilter("org-1", "site-1"), false, true},
		{"observer reads an alert topic", obs, protocol.AlertTopic("org-1", "site-1", "offline"), false, true},
		{"observer writes", obs, protocol.Root + "/alerts/x", true, false},
		// The device tree carries votes, and a shared filter would join the
		// backend's group and take votes from it (issue 15, finding 2).
		{"observer reads the device tree", obs, protocol.UpstreamFilter(protocol.KindVote), false, false},
		{"observer reads all", obs, protocol.Root + "/#", false, false},
		{"observer reads with a wildcard level", obs, protocol.Root + "/+/org-1/#", false, false},
		{"observer joins the backend's group", obs, "$share/semko/" + protocol.UpstreamFilter(protocol.KindVote), false, false},
		{"observer shares alerts", obs, "$share/apps/" + protocol.AlertFilter("", ""), false, false},
		{"observer alerts lookalike", obs, protocol.Root + "/alertsx/#", false, false},
		// A scoped observer: its organisations and sites written out, nothing else.
		{"scoped observer reads its org", bank, protocol.AlertFilter("bank", ""), false, true},
		{"scoped observer reads a site of its org", bank, protocol.AlertFilter("bank", "bank-west"), false, true},
		{"scoped observer reads its site", bank, protocol.AlertFilter("muni", "muni-centre"), false, true},
		{"scoped observer reads an alert topic of its org", bank, protocol.AlertTopic("bank", "bank-west", "offline"), false, true},
		{"scoped observer reads all alerts", bank, protocol.AlertFilter("", ""), false, false},
		{"scoped observer reads another org", bank, protocol.AlertFilter("muni", ""), false, false},
		{"scoped observer reads another site", bank, protocol.AlertFilter("muni", "muni-north"), false, false},
		{"scoped observer: org wildcard", bank, protocol.Root + "/alerts/+/muni-centre/#", false, false},
		{"scoped observer: # at org", bank, protocol.Root + "/alerts/#", false, false},
		{"scoped observer: bare root", bank, protocol.Root + "/alerts", false, false},
		{"scoped observer: org lookalike", bank, protocol.Root + "/alerts/bankx/#", false, false},
		{"no role", Credential{Username: "kp-1"}, own(protocol.KindVote), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := allowed(tt.cr, tt.topic, tt.write); got != tt.want {
				t.Errorf("allowed(%s, %q, write=%v) = %v", tt.cr.Role, tt.topic, tt.write, got)
			}
		})
	}
}

// FuzzAllowed checks the invariants that matter whatever the topic: a
// device never writes outside its own upstream topics nor reads anything but
// its exact downstream topics and the time beacon, an observer never writes,
// and nobody reaches outside protocol.Root.
func FuzzAllowed(f *testing.F) {
	for _, k := range protocol.Kinds() {
		f.Add(protocol.DeviceTopic("kp-1", k), true)
		f.Add(protocol.DeviceTopic("kp-2", k), false)
	}
	f.Add("#", false)
	f.Add("$share/g/semko/v1/#", false)
	f.Add("semko/v1/alerts/#", false)
	f.Add("semko/v1/devices/kp-1/vote/#", true)
	f.Add(protocol.TimeTopic, false)
	f.Fuzz(func(t *testing.T, topic string, write bool) {
		dev := Credential{Username: "kp-1", Role: RoleDevice}
		if allowed(dev, topic, write) && topic != protocol.TimeTopic {
			if strings.ContainsAny(topic, "+#") {
				t.Fatalf("device allowed wildcard %q", topic)
			}
			tp, err := protocol.ParseTopic(topic)
			if err != nil || tp.Device != "kp-1" || tp.Kind.Upstream() != write {
				t.Fatalf("device allowed %q write=%v", topic, write)
			}
		}
		if topic == protocol.TimeTopic && write && allowed(dev, topic, write) {
			t.Fatal("device allowed to write the time beacon")
		}
		if allowed(Credential{Username: "app", Role: RoleObserver}, topic, true) {
			t.Fatal("observer allowed to write")
		}
		if allowed(Credential{Username: "app", Role: RoleObserver}, topic, false) &&
			!strings.HasPrefix(topic, protocol.Root+"/alerts") {
			t.Fatalf("observer allowed to read outside the alerts: %q", topic)
		}
		if allowed(Credential{Username: "svc", Role: RoleBackend}, topic, write) && !underRoot(unshare(topic)) {
			t.Fatalf("backend allowed outside root: %q", topic)
		}
	})
}

func TestRateLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newRateLimiter(2, 3, func() time.Time { return now })
	take := func(id string, n int) (ok int) {
		for range n {
			if l.allow(id) {
				ok++
			}
		}
		return ok
	}
	if got := take("a", 5); got != 3 {
		t.Fatalf("burst: %d allowed, want 3", got)
	}
	if got := take("b", 1); got != 1 {
		t.Fatal("one client's burst limited another")
	}
	now = now.Add(time.Second) // 2 tokens back
	if got := take("a", 5); got != 2 {
		t.Fatalf("after 1 s: %d allowed, want 2", got)
	}
	now = now.Add(time.Hour)
	if got := take("a", 5); got != 3 {
		t.Fatalf("refill capped at burst: %d allowed, want 3", got)
	}
	// A client that disconnects with its bucket spent finds it spent when
	// it comes back; one whose bucket has refilled is forgotten.
	l.idle("a")
	if got := take("a", 5); got != 0 {
		t.Fatalf("after a reconnect: %d allowed, want 0 (the debt is kept)", got)
	}
	now = now.Add(time.Hour)
	l.idle("a")
	if l.len() != 1 {
		t.Fatal("idle kept a full bucket")
	}
	if newRateLimiter(-1, 10, time.Now).allow("x") != true {
		t.Fatal("disabled limiter refused")
	}
}
