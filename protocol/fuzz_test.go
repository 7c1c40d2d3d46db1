package protocol

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// Hostile inputs every JSON decoder target also starts from.
var nastyJSON = []string{
	``, `null`, `{}`, `[]`, `{"v":1}`, `{"v":1}}`, `{"v":1}]`, `{"v":1} {"v":1}`,
	`{"v":1e400}`, `{"v":-0}`, `{"v":1.0}`, `{"V":1}`, `{"v":1,"v":2}`,
	`{"ts":"2026-11-24T09:30:15.999999999+14:00"}`, `{"ts":"0000-01-01T00:00:00-01:00"}`,
	`{"ts":"9999-12-31T23:59:59+01:00"}`, `{"ts":"2026-13-01T00:00:00Z"}`,
	"{\"device\":\"kp\xff\"}", `{"device":"\ud800"}`, `{"presses":[1,2,3,4,5,6]}`,
	`{"panel":{"texts":{"en":"\u0000\u001f*%"}}}`, `{"detail":{}}`, `{"args":null}`,
	strings.Repeat("[", 10000), `{"seq":18446744073709551616}`,
}

// fuzzDecode checks that Decode never panics, fails only permanently, and
// that whatever it accepts re-encodes to a stable form that decodes equal.
func fuzzDecode[T Validator](f *testing.F, samples ...T) {
	for _, s := range samples {
		data, err := Encode(s)
		if err != nil {
			f.Fatalf("sample %+v: %v", s, err)
		}
		f.Add(data)
	}
	for _, s := range nastyJSON {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Decode[T](data)
		if err != nil {
			if !Permanent(err) {
				t.Fatalf("Decode error is not permanent: %v", err)
			}
			return
		}
		wire, err := Encode(v)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", v, err)
		}
		back, err := Decode[T](wire)
		if err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", wire, err)
		}
		if !samePayload(back, v) {
			t.Fatalf("round trip changed the payload\n got %+v\nwant %+v", back, v)
		}
		again, err := Encode(back)
		if err != nil || !bytes.Equal(again, wire) {
			t.Fatalf("encoding is not stable:\n%s\n%s (%v)", wire, again, err)
		}
	})
}

func FuzzDecodeVote(f *testing.F) {
	nps := SampleVote()
	nps.Scale, nps.Score, nps.Channel = ScaleNPS11, 0, ChannelWeb
	repeat := SampleVote()
	repeat.Valid, repeat.Reason = false, ReasonRepeat
	local := SampleVote()
	local.Clock = ClockLocal
	fuzzDecode(f, SampleVote(), nps, repeat, local)
}

func FuzzDecodeActivate(f *testing.F) {
	bare := Activate{V: Version, ID: "a"}
	fuzzDecode(f, SampleActivate(), bare)
}

func FuzzDecodeActivationRecord(f *testing.F) {
	open := SampleActivationRecord()
	open.Voted, open.Closed = false, false
	fuzzDecode(f, SampleActivationRecord(), open)
}

func FuzzDecodeHeartbeat(f *testing.F) {
	fuzzDecode(f, SampleHeartbeat())
}

func FuzzDecodeStatus(f *testing.F) {
	death := SampleStatus()
	death.Online = false
	fuzzDecode(f, SampleStatus(), death)
}

func FuzzDecodeConfig(f *testing.F) {
	fuzzDecode(f, SampleConfig())
}

func FuzzDecodeConfigApplied(f *testing.F) {
	refused := SampleConfigApplied()
	refused.OK, refused.Error = false, "bad zone"
	fuzzDecode(f, SampleConfigApplied(), refused)
}

func FuzzDecodeCommand(f *testing.F) {
	info := SampleCommand()
	info.Name, info.Args = CommandInfo, map[string]string{"a": "b"}
	fuzzDecode(f, SampleCommand(), info)
}

func FuzzDecodeCommandResult(f *testing.F) {
	fuzzDecode(f, SampleCommandResult())
}

func FuzzDecodeTimeBeacon(f *testing.F) {
	fuzzDecode(f, SampleTimeBeacon())
}

func FuzzParseTopic(f *testing.F) {
	for _, k := range Kinds() {
		f.Add(DeviceTopic("kp-0001", k))
	}
	for _, s := range []string{
		"", "semko/v1/devices/", "semko/v1/devices//vote", "semko/v1/devices/+/vote",
		"semko/v1/devices/#", "semko/v1/devices/kp/cmd/result/x", "semko/v1/devices/kp/cmd/",
		"semko/v1/devices/kp\x00/vote", "semko/v1/devices/" + strings.Repeat("a", 65) + "/vote",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		p, err := ParseTopic(topic)
		if err != nil {
			if !errors.Is(err, ErrNotSemko) && !errors.Is(err, ErrUnknownKind) && !errors.Is(err, ErrDeviceID) {
				t.Fatalf("ParseTopic(%q) error without a sentinel: %v", topic, err)
			}
			return
		}
		if strings.ContainsAny(topic, "+#\x00") {
			t.Fatalf("ParseTopic(%q) accepted a wildcard or NUL", topic)
		}
		if got := DeviceTopic(p.Device, p.Kind); got != topic {
			t.Fatalf("ParseTopic(%q) = %+v, which renders as %q", topic, p, got)
		}
		if err := ValidateDeviceID(p.Device); err != nil {
			t.Fatalf("ParseTopic(%q) returned a bad device: %v", topic, err)
		}
		if p.Kind.Upstream() == p.Kind.Downstream() {
			t.Fatalf("ParseTopic(%q) kind %q has no single direction", topic, p.Kind)
		}
	})
}

// checkFrameRoundTrip asserts the frame invariant: a parsed frame encodes
// within MaxFrame and parses back to itself.
func checkFrameRoundTrip(t *testing.T, input []byte, f Frame) {
	t.Helper()
	wire := AppendFrame(nil, f)
	if len(wire) > MaxFrame {
		t.Fatalf("%q parsed to %#v, which encodes to %d bytes", input, f, len(wire))
	}
	back, err := ParseFrame(wire)
	if err != nil {
		t.Fatalf("%q parsed to %#v, whose encoding %q does not parse: %v", input, f, wire, err)
	}
	if !reflect.DeepEqual(back, f) {
		t.Fatalf("%q: %#v re-parsed as %#v", input, f, back)
	}
	// The typed parsers must not panic on anything that frames.
	if k, err := ParseKeyPress(f); err == nil {
		if again, err := ParseKeyPress(k.Frame()); err != nil || again != k {
			t.Fatalf("KEY %+v round trip: %+v, %v", k, again, err)
		}
	}
	if d, err := ParseDeviceInfo(f); err == nil {
		frame := d.BootFrame()
		if f.Type == FrameInfo {
			frame = d.InfoFrame()
		}
		if again, err := ParseDeviceInfo(frame); err != nil || again != d {
			t.Fatalf("%s %+v round trip: %+v, %v", f.Type, d, again, err)
		}
	}
	if s, err := ParseSelfTest(f); err == nil {
		// KeyReport keeps the wire's digits, so compare the decoded booleans.
		again, err := ParseSelfTest(s.Frame())
		if err != nil || again.Pass != s.Pass || again.PanelOK != s.PanelOK || again.LightOK != s.LightOK || again.KeysOK != s.KeysOK {
			t.Fatalf("TEST %+v round trip: %+v, %v", s, again, err)
		}
	}
}

func serialSeeds(add func([]byte)) {
	for _, fr := range SampleFrames() {
		add(fr.Bytes())
	}
	for _, s := range []string{
		"", "\n", "*", "*00", "DISARM*00", "DISARM*00\r\n", "DISARM*0", "DISARM*0g", "disarm*20",
		"PANEL %*", "PANEL %4*", "PANEL %zz*", "PANEL a\tb*", "KEY 9 -1 99999999999999999999*",
		"KEY 1 4294967296 -9223372036854775808*", "TEST PASS 1 1 1111\xff*",
		"INFO 1 2 3 9223372036854775807*", "A  B*", "\r*", strings.Repeat("%20", 200) + "*",
	} {
		add([]byte(s))
	}
}

func FuzzParseFrame(f *testing.F) {
	serialSeeds(func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, line []byte) {
		fr, err := ParseFrame(line)
		if err != nil {
			if !errors.Is(err, ErrFrame) && !errors.Is(err, ErrChecksum) {
				t.Fatalf("ParseFrame(%q) error without a sentinel: %v", line, err)
			}
			return
		}
		checkFrameRoundTrip(t, line, fr)
	})
}

// FuzzFrameReader checks the reader against a simple model: split the
// stream at '\n'; a line longer than MaxFrame (newline included) is one
// ErrFrame, any other line is whatever ParseFrame says; a tail without a
// newline is io.EOF.
func FuzzFrameReader(f *testing.F) {
	var all []byte
	serialSeeds(func(b []byte) {
		f.Add(b)
		all = append(all, b...)
		all = append(all, '\n')
	})
	f.Add(all)
	f.Add([]byte(strings.Repeat("x", 3*MaxFrame) + "\nDISARM*00\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		fr := NewFrameReader(bytes.NewReader(stream))
		rest := stream
		for step := 0; ; step++ {
			if step > len(stream)+1 { // every ReadFrame consumes at least one byte
				t.Fatalf("reader does not make progress at step %d", step)
			}
			got, err := fr.ReadFrame()
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				if err != io.EOF {
					t.Fatalf("step %d: at the tail %q ReadFrame = %#v, %v; want io.EOF", step, rest, got, err)
				}
				return
			}
			line := rest[:i+1]
			rest = rest[i+1:]
			if len(line) > MaxFrame {
				if !errors.Is(err, ErrFrame) {
					t.Fatalf("step %d: oversized line gave %#v, %v", step, got, err)
				}
				continue
			}
			want, wantErr := ParseFrame(line)
			if (err == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d: line %q: reader %#v, %v; ParseFrame %#v, %v", step, line, got, err, want, wantErr)
			}
			if err == nil {
				checkFrameRoundTrip(t, line, got)
			}
		}
	})
}
