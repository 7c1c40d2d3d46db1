package protocol_test

import (
	"encoding/json"
	"testing"

	"github.com/semko/semko/protocol"
)

// BenchmarkDecodeVote is the broker-side cost of every vote: bounded,
// UTF-8 checked, strict JSON decode and Validate.
func BenchmarkDecodeVote(b *testing.B) {
	data, err := json.Marshal(protocol.SampleVote())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := protocol.Decode[protocol.Vote](data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeVoteParallel is the same on every core, as the broker runs
// one connection goroutine per device.
func BenchmarkDecodeVoteParallel(b *testing.B) {
	data, err := json.Marshal(protocol.SampleVote())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := protocol.Decode[protocol.Vote](data); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkValidateVote isolates the rules from the JSON decoding.
func BenchmarkValidateVote(b *testing.B) {
	v := protocol.SampleVote()
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseTopic is run by both the ACL and ingest on every publish.
func BenchmarkParseTopic(b *testing.B) {
	topic := protocol.DeviceTopic("kp-0001", protocol.KindVote)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := protocol.ParseTopic(topic); err != nil {
			b.Fatal(err)
		}
	}
}
