package broker

import (
	"slices"
	"strings"

	"github.com/semko/semko/protocol"
)

// sharePrefix starts an MQTT 5 shared subscription: $share/<group>/<filter>.
const sharePrefix = "$share/"

// allowed is the whole access policy, kept as one pure function so it can be
// read in one place and fuzzed. topic is a concrete topic when write is true
// and a subscription filter otherwise.
func allowed(cr Credential, topic string, write bool) bool {
	switch cr.Role {
	case RoleDevice:
		if write {
			// Only upstream kinds, only under its own id; ParseTopic refuses
			// wildcards and anything outside the contract.
			t, err := protocol.ParseTopic(topic)
			return err == nil && t.Device == cr.Username && t.Kind.Upstream()
		}
		// Exactly its own downstream topics and the backend's time beacon:
		// no wildcards, no shares.
		return topic == protocol.TimeTopic || slices.Contains(protocol.DeviceFilter(cr.Username), topic)
	case RoleBackend:
		if write {
			return underRoot(topic)
		}
		return underRoot(unshare(topic))
	case RoleObserver:
		// Apps read alert notices, nothing else: the device tree carries
		// votes, and a shared filter would join the backend's group and
		// take messages away from it.
		return !write && underAlerts(topic) && (!cr.scoped() || inScope(cr, topic))
	}
	return false
}

// inScope reports whether a scoped observer's filter can only match alert
// topics of its scope: the organisation level must be one of its
// organisations, or the site level one of its sites, written out (not a
// wildcard). Topics are semko/v1/alerts/<org>/<site>/<kind>, so a literal
// level matches that organisation or site and nothing else; a wildcard
// there could match another's and is refused.
func inScope(cr Credential, filter string) bool {
	rest, ok := strings.CutPrefix(filter, alertsRoot+"/")
	if !ok {
		return false
	}
	levels := strings.SplitN(rest, "/", 3)
	literal := func(s string) bool { return s != "" && s != "+" && s != "#" }
	if literal(levels[0]) && slices.Contains(cr.Orgs, levels[0]) {
		return true
	}
	return len(levels) > 1 && literal(levels[0]) && literal(levels[1]) && slices.Contains(cr.Sites, levels[1])
}

// underAlerts reports whether a topic or filter lies inside the alert
// notices' tree (protocol.AlertTopic). A shared filter ("$share/...") is
// not: it does not start with protocol.Root.
func underAlerts(topic string) bool {
	return topic == alertsRoot || strings.HasPrefix(topic, alertsRoot+"/")
}

// alertsRoot is semko/v1/alerts.
var alertsRoot = strings.TrimSuffix(protocol.AlertFilter("", ""), "/#")

// underRoot reports whether a topic or filter lies inside protocol.Root, so
// that neither "#" nor "+/v1/..." nor $SYS topics are reachable.
func underRoot(topic string) bool {
	return topic == protocol.Root || strings.HasPrefix(topic, protocol.Root+"/")
}

// unshare strips "$share/<group>/" so that shared subscriptions (several
// backend replicas sharing the stream) are judged by their real filter. A
// malformed share yields "", which nothing allows.
func unshare(filter string) string {
	rest, ok := strings.CutPrefix(filter, sharePrefix)
	if !ok {
		return filter
	}
	group, f, ok := strings.Cut(rest, "/")
	if !ok || group == "" {
		return ""
	}
	return f
}
