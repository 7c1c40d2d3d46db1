package protocol

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// withSum completes body into a wire line, computing the checksum here
// rather than with the package's own function.
func withSum(body string) string {
	var sum byte
	for i := 0; i < len(body); i++ {
		sum ^= body[i]
	}
	return fmt.Sprintf("%s*%02X\n", body, sum)
}

func TestSampleFramesRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range SampleFrames() {
		t.Run(f.String(), func(t *testing.T) {
			wire := f.Bytes()
			if len(wire) > MaxFrame {
				t.Fatalf("sample frame is %d bytes, limit %d", len(wire), MaxFrame)
			}
			body := wire[:len(wire)-len("*HH\n")]
			if string(wire) != withSum(string(body)) {
				t.Fatalf("checksum of %q is not the XOR of its body", wire)
			}
			got, err := ParseFrame(wire)
			if err != nil {
				t.Fatalf("ParseFrame(%q): %v", wire, err)
			}
			if !reflect.DeepEqual(got, f) {
				t.Fatalf("ParseFrame(%q) = %#v, want %#v", wire, got, f)
			}
		})
		seen[f.Type] = true
	}
	for _, typ := range []string{FrameBoot, FrameKey, FrameInfo, FrameTest, FrameErr, FrameArm, FrameDisarm, FrameTaken, FramePanel, FrameLight} {
		if !seen[typ] {
			t.Errorf("SampleFrames has no %s frame", typ)
		}
	}
}

// TestChecksumVectors were computed by hand, e.g. DISARM:
// 0x44^0x49^0x53^0x41^0x52^0x4D = 0x00.
func TestChecksumVectors(t *testing.T) {
	tests := []struct {
		frame Frame
		wire  string
	}{
		{Frame{Type: FrameDisarm}, "DISARM*00\n"},
		{Frame{Type: FrameTest}, "TEST*16\n"},
		{Frame{Type: FrameInfo}, "INFO*0E\n"},
		{Frame{Type: FrameLight, Args: []string{"80"}}, "LIGHT 80*76\n"},
	}
	for _, tt := range tests {
		t.Run(tt.wire, func(t *testing.T) {
			if got := string(tt.frame.Bytes()); got != tt.wire {
				t.Fatalf("Bytes() = %q, want %q", got, tt.wire)
			}
			if got := string(AppendFrame([]byte("prefix"), tt.frame)); got != "prefix"+tt.wire {
				t.Fatalf("AppendFrame with a prefix = %q: the prefix must not enter the checksum", got)
			}
			if got := tt.frame.String(); got != strings.TrimSuffix(tt.wire, "\n") {
				t.Fatalf("String() = %q", got)
			}
		})
	}
}

func TestEscaping(t *testing.T) {
	tests := []struct {
		name, arg, wire string
	}{
		{"plain", "abc", "abc"},
		{"empty", "", ""},
		{"space", "a b", "a%20b"},
		{"star", "5*", "5%2A"},
		{"percent", "100%", "100%25"},
		{"newline", "a\nb", "a%0Ab"},
		{"carriage return", "a\rb", "a%0Db"},
		{"tab", "\t", "%09"},
		{"nul", "\x00", "%00"},
		{"del", "\x7f", "%7F"},
		{"looks escaped", "%41", "%2541"},
		{"cyrillic stays UTF-8", "Оценете", "Оценете"},
		{"emoji stays UTF-8", "😀 ok", "😀%20ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := Frame{Type: FramePanel, Args: []string{tt.arg}}
			want := withSum("PANEL " + tt.wire)
			if got := string(f.Bytes()); got != want {
				t.Fatalf("Bytes() = %q, want %q", got, want)
			}
			got, err := ParseFrame([]byte(want))
			if err != nil {
				t.Fatalf("ParseFrame(%q): %v", want, err)
			}
			if !reflect.DeepEqual(got, f) {
				t.Fatalf("ParseFrame = %#v, want %#v", got, f)
			}
		})
	}
}

func TestParseFrameAccepts(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Frame
	}{
		{"no newline", "DISARM*00", Frame{Type: FrameDisarm}},
		{"CRLF", "DISARM*00\r\n", Frame{Type: FrameDisarm}},
		{"lower-case checksum", "INFO*0e\n", Frame{Type: FrameInfo}},
		{"lower-case escape", withSum("PANEL a%2ab"), Frame{Type: FramePanel, Args: []string{"a*b"}}},
		{"empty argument", withSum("PANEL "), Frame{Type: FramePanel, Args: []string{""}}},
		{"empty middle argument", withSum("ERR  x"), Frame{Type: FrameErr, Args: []string{"", "x"}}},
		{"raw UTF-8", withSum("PANEL Привет"), Frame{Type: FramePanel, Args: []string{"Привет"}}},
		{"unknown type", withSum("HELLO 1"), Frame{Type: "HELLO", Args: []string{"1"}}},
		{"longest line", withSum("PANEL " + strings.Repeat("x", MaxFrame-1-len("PANEL *HH"))), Frame{Type: FramePanel, Args: []string{strings.Repeat("x", MaxFrame-1-len("PANEL *HH"))}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFrame([]byte(tt.line))
			if err != nil {
				t.Fatalf("ParseFrame(%q): %v", tt.line, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseFrame(%q) = %#v, want %#v", tt.line, got, tt.want)
			}
		})
	}
}

func TestParseFrameRejects(t *testing.T) {
	tests := []struct {
		name string
		line string
		want error
	}{
		{"empty", "", ErrFrame},
		{"newline only", "\n", ErrFrame},
		{"no checksum", "DISARM\n", ErrFrame},
		{"star only", "DISARM*\n", ErrFrame},
		{"one hex digit", "DISARM*0\n", ErrFrame},
		{"three hex digits", "DISARM*000\n", ErrFrame},
		{"bad hex", "DISARM*0G\n", ErrFrame},
		{"signed hex", "DISARM*+0\n", ErrFrame},
		{"no body", "*00\n", ErrFrame},
		{"mismatch", "DISARM*01\n", ErrChecksum},
		{"flipped bit", "ARM 20001*" + strings.TrimSuffix(withSum("ARM 20000"), "\n")[len("ARM 20000*"):] + "\n", ErrChecksum},
		{"lower-case type", withSum("disarm"), ErrFrame},
		{"mixed-case type", withSum("Key 1 2 3"), ErrFrame},
		{"digit in type", withSum("KEY1 2 3"), ErrFrame},
		{"empty type", withSum(" 80"), ErrFrame},
		{"truncated escape at end", withSum("PANEL a%4"), ErrFrame},
		{"lone percent", withSum("PANEL a%"), ErrFrame},
		{"bad escape", withSum("PANEL %G1"), ErrFrame},
		{"signed escape", withSum("PANEL %+1"), ErrFrame},
		{"raw tab", withSum("PANEL a\tb"), ErrFrame},
		{"raw NUL", withSum("BOOT\x00 1 2 3"), ErrFrame},
		{"raw DEL", withSum("PANEL \x7f"), ErrFrame},
		{"raw CR inside", withSum("PANEL a\rb"), ErrFrame},
		{"raw star inside", withSum("PANEL 5*"), ErrFrame},
		{"oversized", withSum("PANEL " + strings.Repeat("x", MaxFrame)), ErrFrame},
		{"longest line plus CR", strings.TrimSuffix(withSum("PANEL "+strings.Repeat("x", MaxFrame-1-len("PANEL *HH"))), "\n") + "\r\n", ErrFrame},
		{"one byte too long", withSum("PANEL " + strings.Repeat("x", MaxFrame-len("PANEL *HH"))), ErrFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFrame([]byte(tt.line))
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseFrame(%q) = %#v, %v; want %v", tt.line, got, err, tt.want)
			}
			if tt.want == ErrFrame && errors.Is(err, ErrChecksum) {
				t.Fatalf("a malformed frame reported as a checksum mismatch: %v", err)
			}
		})
	}
}

func TestFrameReader(t *testing.T) {
	first := Frame{Type: FrameBoot, Args: []string{"1.4.2", "SK5-000123", "SK5"}}
	second := KeyPress{Key: 2, Seq: 7, Clock: time.UnixMilli(1_795_500_000_000).UTC()}.Frame()
	third := Frame{Type: FrameTest, Args: []string{"PASS", "1", "1", "11111"}}
	longest := Frame{Type: FramePanel, Args: []string{strings.Repeat("y", MaxFrame-1-len("PANEL *HH"))}}

	stream := string(first.Bytes()) +
		"garbage from a reset\n" +
		strings.Repeat("z", 3*MaxFrame) + "\n" + // oversized: skipped whole
		string(second.Bytes()) +
		"DISARM*7F\n" + // checksum mismatch
		strings.TrimSuffix(string(third.Bytes()), "\n") + "\r\n" +
		string(longest.Bytes()) +
		strings.Repeat("w", MaxFrame) + "\n" + // one byte past the limit
		string(first.Bytes()) +
		"KEY 1 2" // cut off by EOF

	type step struct {
		frame Frame
		err   error
	}
	want := []step{
		{frame: first},
		{err: ErrFrame},
		{err: ErrFrame},
		{frame: second},
		{err: ErrChecksum},
		{frame: third},
		{frame: longest},
		{err: ErrFrame},
		{frame: first},
		{err: io.EOF},
	}
	readers := []struct {
		name string
		r    func() io.Reader
	}{
		{"whole", func() io.Reader { return strings.NewReader(stream) }},
		{"byte by byte", func() io.Reader { return iotest.OneByteReader(strings.NewReader(stream)) }},
		{"half buffers", func() io.Reader { return iotest.HalfReader(strings.NewReader(stream)) }},
	}
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			fr := NewFrameReader(rd.r())
			for i, w := range want {
				got, err := fr.ReadFrame()
				if w.err != nil {
					if !errors.Is(err, w.err) {
						t.Fatalf("step %d: ReadFrame = %#v, %v; want error %v", i, got, err, w.err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: ReadFrame: %v", i, err)
				}
				if !reflect.DeepEqual(got, w.frame) {
					t.Fatalf("step %d: ReadFrame = %#v, want %#v", i, got, w.frame)
				}
			}
		})
	}
}

func TestFrameReaderPassesReadErrors(t *testing.T) {
	boom := errors.New("port unplugged")
	fr := NewFrameReader(io.MultiReader(strings.NewReader(withSum("INFO")), iotest.ErrReader(boom)))
	if f, err := fr.ReadFrame(); err != nil || f.Type != FrameInfo {
		t.Fatalf("first ReadFrame = %#v, %v", f, err)
	}
	_, err := fr.ReadFrame()
	if !errors.Is(err, boom) || errors.Is(err, ErrFrame) {
		t.Fatalf("ReadFrame = %v, want the reader's own error", err)
	}
}

func TestKeyPress(t *testing.T) {
	clock := time.Date(2026, 11, 24, 9, 30, 15, 250_000_000, time.UTC)
	for key := 1; key <= 5; key++ {
		k := KeyPress{Key: key, Seq: uint32(1000 + key), Clock: clock}
		got, err := ParseKeyPress(k.Frame())
		if err != nil || got != k {
			t.Errorf("ParseKeyPress(%v) = %+v, %v; want %+v", k.Frame(), got, err, k)
		}
	}
	if got, err := ParseKeyPress(Frame{Type: FrameKey, Args: []string{"3", "4294967295", "0"}}); err != nil || got.Seq != 1<<32-1 || !got.Clock.Equal(time.UnixMilli(0)) {
		t.Errorf("largest kseq = %+v, %v", got, err)
	}

	rejects := []struct {
		name string
		f    Frame
	}{
		{"wrong type", Frame{Type: FrameTaken, Args: []string{"1", "2", "3"}}},
		{"no args", Frame{Type: FrameKey}},
		{"two args", Frame{Type: FrameKey, Args: []string{"1", "2"}}},
		{"four args", Frame{Type: FrameKey, Args: []string{"1", "2", "3", "4"}}},
		{"key 0", Frame{Type: FrameKey, Args: []string{"0", "2", "3"}}},
		{"key 6", Frame{Type: FrameKey, Args: []string{"6", "2", "3"}}},
		{"key negative", Frame{Type: FrameKey, Args: []string{"-1", "2", "3"}}},
		{"key not a number", Frame{Type: FrameKey, Args: []string{"five", "2", "3"}}},
		{"kseq negative", Frame{Type: FrameKey, Args: []string{"1", "-2", "3"}}},
		{"kseq over 32 bits", Frame{Type: FrameKey, Args: []string{"1", "4294967296", "3"}}},
		{"clock not a number", Frame{Type: FrameKey, Args: []string{"1", "2", "noon"}}},
		{"clock float", Frame{Type: FrameKey, Args: []string{"1", "2", "3.5"}}},
		{"empty key", Frame{Type: FrameKey, Args: []string{"", "2", "3"}}},
	}
	for _, tt := range rejects {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := ParseKeyPress(tt.f); !errors.Is(err, ErrFrame) {
				t.Fatalf("ParseKeyPress(%v) = %+v, %v; want ErrFrame", tt.f, got, err)
			}
		})
	}
}

func TestDeviceInfo(t *testing.T) {
	info := DeviceInfo{FW: "1.4.2", Serial: "SK5-000123", Model: "SK5 rev B", Clock: time.UnixMilli(1_795_500_000_123).UTC()}
	boot, err := ParseDeviceInfo(info.BootFrame())
	if want := (DeviceInfo{FW: info.FW, Serial: info.Serial, Model: info.Model}); err != nil || boot != want {
		t.Fatalf("BOOT round trip = %+v, %v; want %+v", boot, err, want)
	}
	got, err := ParseDeviceInfo(info.InfoFrame())
	if err != nil || got != info {
		t.Fatalf("INFO round trip = %+v, %v; want %+v", got, err, info)
	}
	// Through the wire too: the model has a space.
	wire, err := ParseFrame(info.InfoFrame().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseDeviceInfo(wire); err != nil || got != info {
		t.Fatalf("INFO over the wire = %+v, %v", got, err)
	}

	rejects := []struct {
		name string
		f    Frame
	}{
		{"wrong type", Frame{Type: FrameKey, Args: []string{"a", "b", "c"}}},
		{"host's INFO request", Frame{Type: FrameInfo}},
		{"BOOT two args", Frame{Type: FrameBoot, Args: []string{"a", "b"}}},
		{"BOOT four args", Frame{Type: FrameBoot, Args: []string{"a", "b", "c", "1"}}},
		{"INFO three args", Frame{Type: FrameInfo, Args: []string{"a", "b", "c"}}},
		{"INFO five args", Frame{Type: FrameInfo, Args: []string{"a", "b", "c", "1", "2"}}},
		{"INFO clock not a number", Frame{Type: FrameInfo, Args: []string{"a", "b", "c", "now"}}},
	}
	for _, tt := range rejects {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := ParseDeviceInfo(tt.f); !errors.Is(err, ErrFrame) {
				t.Fatalf("ParseDeviceInfo(%v) = %+v, %v; want ErrFrame", tt.f, got, err)
			}
		})
	}
}

func TestSelfTest(t *testing.T) {
	accepts := []SelfTest{
		{Pass: true, PanelOK: true, LightOK: true, KeysOK: [5]bool{true, true, true, true, true}, KeyReport: "11111"},
		{Pass: false, PanelOK: true, LightOK: false, KeysOK: [5]bool{true, true, false, true, true}, KeyReport: "11011"},
		{KeyReport: "00000"},
	}
	for _, s := range accepts {
		t.Run(s.Frame().String(), func(t *testing.T) {
			got, err := ParseSelfTest(s.Frame())
			if err != nil || got != s {
				t.Fatalf("ParseSelfTest = %+v, %v; want %+v", got, err, s)
			}
		})
	}

	rejects := []struct {
		name string
		args []string
	}{
		{"no args", nil},
		{"three args", []string{"PASS", "1", "1"}},
		{"five args", []string{"PASS", "1", "1", "11111", "x"}},
		{"verdict OK", []string{"OK", "1", "1", "11111"}},
		{"verdict lower-case", []string{"pass", "1", "1", "11111"}},
		{"panel 2", []string{"PASS", "2", "1", "11111"}},
		{"light empty", []string{"PASS", "1", "", "11111"}},
		{"four keys", []string{"PASS", "1", "1", "1111"}},
		{"six keys", []string{"PASS", "1", "1", "111111"}},
		{"key x", []string{"FAIL", "1", "1", "11x11"}},
	}
	for _, tt := range rejects {
		t.Run(tt.name, func(t *testing.T) {
			f := Frame{Type: FrameTest, Args: tt.args}
			if got, err := ParseSelfTest(f); !errors.Is(err, ErrFrame) {
				t.Fatalf("ParseSelfTest(%v) = %+v, %v; want ErrFrame", f, got, err)
			}
		})
	}
	if _, err := ParseSelfTest(Frame{Type: FrameKey, Args: []string{"PASS", "1", "1", "11111"}}); !errors.Is(err, ErrFrame) {
		t.Fatalf("ParseSelfTest accepted a KEY frame: %v", err)
	}
}
