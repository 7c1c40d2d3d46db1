package protocol

import (
	"errors"
	"fmt"
	"strings"
)

// Root is the first level of every Semko topic. The version lives in the
// topic so that a future incompatible contract can run beside this one on
// the same broker.
const Root = "semko/v1"

// devicesLevel is the second level of every per-device topic.
const devicesLevel = "devices"

// Kind names the last level(s) of a per-device topic.
type Kind string

// Kinds published by a device (edge agent) to the backend.
const (
	KindVote          Kind = "vote"           // Vote, QoS 1
	KindActivation    Kind = "activation"     // ActivationRecord, QoS 1
	KindHeartbeat     Kind = "heartbeat"      // Heartbeat, QoS 1
	KindStatus        Kind = "status"         // Status, QoS 1, retained; also the will
	KindCommandResult Kind = "cmd/result"     // CommandResult, QoS 1
	KindConfigApplied Kind = "config/applied" // ConfigApplied, QoS 1
)

// Kinds published by the backend to one device.
const (
	KindConfig   Kind = "config"   // Config, QoS 1, retained
	KindActivate Kind = "activate" // Activate, QoS 1
	KindCommand  Kind = "cmd"      // Command, QoS 1
)

// Upstream reports whether devices publish this kind (as opposed to reading
// it). The broker's ACL lets a device write only upstream kinds under its own
// device id, and read only downstream kinds under it.
func (k Kind) Upstream() bool {
	switch k {
	case KindVote, KindActivation, KindHeartbeat, KindStatus, KindCommandResult, KindConfigApplied:
		return true
	}
	return false
}

// Downstream reports whether the backend publishes this kind to a device.
func (k Kind) Downstream() bool {
	switch k {
	case KindConfig, KindActivate, KindCommand:
		return true
	}
	return false
}

// Retained reports whether messages of this kind are published retained.
func (k Kind) Retained() bool { return k == KindStatus || k == KindConfig }

var kinds = []Kind{
	KindVote, KindActivation, KindHeartbeat, KindStatus, KindCommandResult,
	KindConfigApplied, KindConfig, KindActivate, KindCommand,
}

// Kinds returns every kind of the contract, upstream first.
func Kinds() []Kind { return append([]Kind(nil), kinds...) }

// Topic is a parsed per-device topic.
type Topic struct {
	Device string
	Kind   Kind
}

// String renders the topic: semko/v1/devices/<device>/<kind>.
func (t Topic) String() string {
	return Root + "/" + devicesLevel + "/" + t.Device + "/" + string(t.Kind)
}

// DeviceTopic builds the topic of one device and kind.
func DeviceTopic(device string, kind Kind) string {
	return Topic{Device: device, Kind: kind}.String()
}

// UpstreamFilter is the subscription filter that receives every upstream
// message of one kind from all devices (the backend's view).
func UpstreamFilter(kind Kind) string {
	return Root + "/" + devicesLevel + "/+/" + string(kind)
}

// DeviceFilter is the subscription filter of everything addressed to one
// device (config, activations, commands).
func DeviceFilter(device string) []string {
	return []string{
		DeviceTopic(device, KindConfig),
		DeviceTopic(device, KindActivate),
		DeviceTopic(device, KindCommand),
	}
}

// TimeTopic is where the backend publishes its TimeBeacon for all devices
// (QoS 0, not retained: a stale time is worse than none). It is outside the
// per-device tree; every device may subscribe to it, nobody but the backend
// may publish on it.
const TimeTopic = Root + "/time"

// Errors returned by ParseTopic and ValidateDeviceID.
var (
	ErrNotSemko    = errors.New("topic outside " + Root)
	ErrUnknownKind = errors.New("unknown topic kind")
	ErrDeviceID    = errors.New("invalid device id")
)

// MaxDeviceIDLen bounds device ids so that topics and tags stay small.
const MaxDeviceIDLen = 64

// ValidateDeviceID checks that id is usable as one topic level and as an
// InfluxDB tag value: 1..64 characters from [A-Za-z0-9_.-].
func ValidateDeviceID(id string) error {
	if id == "" || len(id) > MaxDeviceIDLen {
		return fmt.Errorf("%w: length %d not in 1..%d", ErrDeviceID, len(id), MaxDeviceIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return fmt.Errorf("%w: %q has character %q", ErrDeviceID, id, c)
		}
	}
	return nil
}

// ParseTopic parses a concrete per-device topic (no wildcards). The broker's
// ACL and the backend's ingest both use it, so they agree on what a topic
// means.
func ParseTopic(topic string) (Topic, error) {
	rest, ok := strings.CutPrefix(topic, Root+"/"+devicesLevel+"/")
	if !ok {
		return Topic{}, fmt.Errorf("%w: %q", ErrNotSemko, topic)
	}
	device, kind, ok := strings.Cut(rest, "/")
	if !ok {
		return Topic{}, fmt.Errorf("%w: %q has no kind", ErrUnknownKind, topic)
	}
	if err := ValidateDeviceID(device); err != nil {
		return Topic{}, err
	}
	for _, k := range kinds {
		if string(k) == kind {
			return Topic{Device: device, Kind: k}, nil
		}
	}
	return Topic{}, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
}

// alertsLevel is the second level of the topics where the backend publishes
// alert notices for people's apps (a technician's phone, a wall display).
const alertsLevel = "alerts"

// AlertNone stands for an empty or unusable level of an alert topic (an
// organisation-wide alert has no site), so every alert topic has exactly
// three levels below semko/v1/alerts and a filter like .../<org>/+/offline
// matches predictably.
const AlertNone = "_"

// AlertTopic is where the backend publishes notices about alerts of one kind
// at one site: semko/v1/alerts/<org>/<site>/<kind>. A level that is empty or
// not a valid id (wildcards, slashes) becomes AlertNone, so a notice can
// never be published on a wildcard or a deeper topic.
func AlertTopic(org, site, kind string) string {
	return Root + "/" + alertsLevel + "/" + alertLevel(org) + "/" + alertLevel(site) + "/" + alertLevel(kind)
}

func alertLevel(s string) string {
	if ValidateDeviceID(s) != nil {
		return AlertNone
	}
	return s
}

// AlertFilter is the subscription filter for alert notices: all of them
// when org is empty, one organisation's when site is empty, else one site's.
// Observer accounts may subscribe to it.
func AlertFilter(org, site string) string {
	f := Root + "/" + alertsLevel + "/"
	if org == "" {
		return f + "#"
	}
	if site == "" {
		return f + alertLevel(org) + "/#"
	}
	return f + alertLevel(org) + "/" + alertLevel(site) + "/#"
}
