package ingest

import (
	"context"
	"testing"

	"github.com/semko/semko/protocol"
)

// FuzzAccept feeds arbitrary payloads on every upstream topic. Accept must
// never panic; with a healthy spool every error must be permanent (bad
// input, never "try again"); and a payload protocol.Decode accepts for the
// topic's device, timed right, must be accepted.
func FuzzAccept(f *testing.F) {
	upstream := []protocol.Kind{}
	for _, k := range protocol.Kinds() {
		if k.Upstream() {
			upstream = append(upstream, k)
		}
	}
	for k, p := range samples(f) {
		for n, u := range upstream {
			if u == k {
				f.Add(uint8(n), p)
			}
		}
	}
	f.Add(uint8(0), []byte(`{"v":1}`))
	f.Add(uint8(3), []byte(`{"v":1,"device":"kp-0001","ts":"2026-11-24T09:30:15Z","online":false,"boot_id":"x","bdseq":1}`))
	// The spool discards, so memory stays flat however long the fuzzer runs.
	fx := newFixture(f, discardSpool{})
	f.Fuzz(func(t *testing.T, kind uint8, payload []byte) {
		k := upstream[int(kind)%len(upstream)]
		err := fx.in.Accept(t.Context(), topic(k), payload, now)
		if err != nil && !protocol.Permanent(err) {
			t.Fatalf("transient error with a healthy spool: %v", err)
		}
		if err != nil && wellFormed(k, payload) {
			t.Fatalf("valid %s rejected: %v\n%s", k, err, payload)
		}
	})
}

// wellFormed reports whether payload is a valid message of kind from
// kp-0001: Accept takes it whatever its timestamp (one out of range is
// held apart, not rejected).
func wellFormed(k protocol.Kind, payload []byte) bool {
	check := func(device string, err error) bool { return err == nil && device == "kp-0001" }
	switch k {
	case protocol.KindVote:
		v, err := protocol.Decode[protocol.Vote](payload)
		return check(v.Device, err)
	case protocol.KindActivation:
		v, err := protocol.Decode[protocol.ActivationRecord](payload)
		return check(v.Device, err)
	case protocol.KindHeartbeat:
		v, err := protocol.Decode[protocol.Heartbeat](payload)
		return check(v.Device, err)
	case protocol.KindStatus:
		v, err := protocol.Decode[protocol.Status](payload)
		return check(v.Device, err)
	case protocol.KindConfigApplied:
		v, err := protocol.Decode[protocol.ConfigApplied](payload)
		return check(v.Device, err)
	case protocol.KindCommandResult:
		v, err := protocol.Decode[protocol.CommandResult](payload)
		return check(v.Device, err)
	}
	return false
}

type discardSpool struct{}

func (discardSpool) Append(context.Context, ...[]byte) error { return nil }
