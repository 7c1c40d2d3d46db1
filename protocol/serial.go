package protocol

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// The keypad's serial line protocol (9600 8N1 on real hardware): one frame a
// line, ASCII, "TYPE arg arg*HH\n", where HH is the XOR of every byte before
// the '*' in two upper-case hex digits, as in NMEA 0183. Arguments are
// separated by one space; bytes that would break the framing (space, '*',
// '%', control characters) are percent-encoded, so panel texts in any
// language travel as UTF-8.

// MaxFrame bounds one serial frame, newline included.
const MaxFrame = 512

// Frame types sent by the keypad.
const (
	FrameBoot = "BOOT" // BOOT <fw> <serial> <model>: the keypad (re)started
	FrameKey  = "KEY"  // KEY <key 1..5> <kseq> <clock_ms>: a button was pressed
	FrameInfo = "INFO" // INFO <fw> <serial> <model> <clock_ms>: answer to INFO
	FrameTest = "TEST" // TEST <PASS|FAIL> <panel 0|1> <light 0|1> <keys>: self-test result; also the host's request
	FrameErr  = "ERR"  // ERR <code> <text>: a fault the keypad noticed by itself
)

// Frame types sent by the host (the edge agent).
const (
	FrameArm    = "ARM"    // ARM <window_ms>: light the keys, a vote is expected
	FrameDisarm = "DISARM" // DISARM: the window closed
	FrameTaken  = "TAKEN"  // TAKEN <kseq>: the press is durably stored; show "thank you"
	FramePanel  = "PANEL"  // PANEL <text>: the instruction text
	FrameLight  = "LIGHT"  // LIGHT <0..100>: backlight level
	// The host sends "INFO" and "TEST" with no arguments to ask for them.
)

// Errors returned by the serial decoders.
var (
	ErrFrame    = errors.New("malformed serial frame")
	ErrChecksum = errors.New("serial frame checksum mismatch")
)

// Frame is one serial line.
type Frame struct {
	Type string
	Args []string
}

// AppendFrame encodes f, checksum and newline included, onto dst.
func AppendFrame(dst []byte, f Frame) []byte {
	start := len(dst)
	dst = append(dst, f.Type...)
	for _, a := range f.Args {
		dst = append(dst, ' ')
		dst = appendEscaped(dst, a)
	}
	sum := checksum(dst[start:])
	return append(dst, '*', hexDigits[sum>>4], hexDigits[sum&0xf], '\n')
}

// Bytes encodes f.
func (f Frame) Bytes() []byte { return AppendFrame(nil, f) }

func (f Frame) String() string { return strings.TrimSuffix(string(f.Bytes()), "\n") }

const hexDigits = "0123456789ABCDEF"

func checksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s ^= c
	}
	return s
}

func needsEscape(c byte) bool { return c <= ' ' || c == '*' || c == '%' || c == 0x7f }

func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsEscape(c) {
			dst = append(dst, '%', hexDigits[c>>4], hexDigits[c&0xf])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

func unescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("%w: truncated escape", ErrFrame)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("%w: bad escape %q", ErrFrame, s[i:i+3])
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// ParseFrame decodes one line, with or without its trailing "\n" or "\r\n".
func ParseFrame(line []byte) (Frame, error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	// Measured with any '\r' still on, so ParseFrame and FrameReader (whose
	// buffer holds MaxFrame bytes) agree on which lines fit.
	if len(line) >= MaxFrame {
		return Frame{}, fmt.Errorf("%w: %d bytes, limit %d", ErrFrame, len(line), MaxFrame)
	}
	line = bytes.TrimSuffix(line, []byte("\r"))
	star := bytes.LastIndexByte(line, '*')
	if star < 1 || len(line)-star != 3 {
		return Frame{}, fmt.Errorf("%w: no *HH checksum", ErrFrame)
	}
	want, err := strconv.ParseUint(string(line[star+1:]), 16, 8)
	if err != nil {
		return Frame{}, fmt.Errorf("%w: checksum %q is not hex", ErrFrame, line[star+1:])
	}
	body := line[:star]
	if got := checksum(body); got != byte(want) {
		return Frame{}, fmt.Errorf("%w: got %02X, frame says %02X", ErrChecksum, got, want)
	}
	// A byte the encoder would have escaped is line noise that slipped past
	// the checksum (a one-in-256 chance); accepting it would also let a frame
	// re-encode longer than MaxFrame.
	for _, c := range body {
		if c != ' ' && c != '%' && needsEscape(c) {
			return Frame{}, fmt.Errorf("%w: unescaped byte 0x%02X", ErrFrame, c)
		}
	}
	fields := strings.Split(string(body), " ")
	f := Frame{Type: fields[0]}
	if f.Type == "" {
		return Frame{}, fmt.Errorf("%w: empty type", ErrFrame)
	}
	for _, c := range []byte(f.Type) {
		if c < 'A' || c > 'Z' {
			return Frame{}, fmt.Errorf("%w: type %q is not upper-case letters", ErrFrame, f.Type)
		}
	}
	for _, raw := range fields[1:] {
		a, err := unescape(raw)
		if err != nil {
			return Frame{}, err
		}
		f.Args = append(f.Args, a)
	}
	return f, nil
}

// FrameReader reads frames from a serial line. A malformed or oversized
// line is reported as an error and skipped; the next ReadFrame continues
// with the line after it, so one bad byte on the wire does not stop the
// keypad.
type FrameReader struct {
	r *bufio.Reader
}

// NewFrameReader wraps r.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, MaxFrame)}
}

// ReadFrame returns the next frame. Errors wrapping ErrFrame or ErrChecksum
// are per-line and recoverable; any other error is the reader's.
func (fr *FrameReader) ReadFrame() (Frame, error) {
	line, err := fr.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// Discard the rest of the oversized line.
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = fr.r.ReadSlice('\n')
		}
		if err != nil {
			return Frame{}, err
		}
		return Frame{}, fmt.Errorf("%w: line longer than %d bytes", ErrFrame, MaxFrame)
	}
	if err != nil {
		return Frame{}, err
	}
	return ParseFrame(line)
}

// KeyPress is a decoded KEY frame.
type KeyPress struct {
	Key   int       // 1..5
	Seq   uint32    // the keypad's own press counter, for TAKEN
	Clock time.Time // the keypad's clock at the press
}

// Frame encodes the key press.
func (k KeyPress) Frame() Frame {
	return Frame{Type: FrameKey, Args: []string{
		strconv.Itoa(k.Key), strconv.FormatUint(uint64(k.Seq), 10), strconv.FormatInt(k.Clock.UnixMilli(), 10),
	}}
}

// ParseKeyPress decodes a KEY frame.
func ParseKeyPress(f Frame) (KeyPress, error) {
	if f.Type != FrameKey || len(f.Args) != 3 {
		return KeyPress{}, fmt.Errorf("%w: want KEY <key> <kseq> <clock_ms>, got %s", ErrFrame, f)
	}
	key, err1 := strconv.Atoi(f.Args[0])
	seq, err2 := strconv.ParseUint(f.Args[1], 10, 32)
	ms, err3 := strconv.ParseInt(f.Args[2], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return KeyPress{}, fmt.Errorf("%w: KEY arguments: %v", ErrFrame, err)
	}
	if key < 1 || key > 5 {
		return KeyPress{}, fmt.Errorf("%w: key %d outside 1..5", ErrFrame, key)
	}
	return KeyPress{Key: key, Seq: uint32(seq), Clock: time.UnixMilli(ms).UTC()}, nil
}

// DeviceInfo is a decoded BOOT or INFO frame.
type DeviceInfo struct {
	FW     string
	Serial string
	Model  string
	Clock  time.Time // INFO only
}

// BootFrame encodes a BOOT frame.
func (d DeviceInfo) BootFrame() Frame {
	return Frame{Type: FrameBoot, Args: []string{d.FW, d.Serial, d.Model}}
}

// InfoFrame encodes an INFO answer.
func (d DeviceInfo) InfoFrame() Frame {
	return Frame{Type: FrameInfo, Args: []string{d.FW, d.Serial, d.Model, strconv.FormatInt(d.Clock.UnixMilli(), 10)}}
}

// ParseDeviceInfo decodes a BOOT or INFO frame.
func ParseDeviceInfo(f Frame) (DeviceInfo, error) {
	switch {
	case f.Type == FrameBoot && len(f.Args) == 3:
		return DeviceInfo{FW: f.Args[0], Serial: f.Args[1], Model: f.Args[2]}, nil
	case f.Type == FrameInfo && len(f.Args) == 4:
		ms, err := strconv.ParseInt(f.Args[3], 10, 64)
		if err != nil {
			return DeviceInfo{}, fmt.Errorf("%w: INFO clock: %v", ErrFrame, err)
		}
		return DeviceInfo{FW: f.Args[0], Serial: f.Args[1], Model: f.Args[2], Clock: time.UnixMilli(ms).UTC()}, nil
	}
	return DeviceInfo{}, fmt.Errorf("%w: want BOOT <fw> <serial> <model> or INFO ... <clock_ms>, got %s", ErrFrame, f)
}

// SelfTest is a decoded TEST result.
type SelfTest struct {
	Pass      bool
	PanelOK   bool
	LightOK   bool
	KeysOK    [5]bool
	KeyReport string // "11111": one digit a key, 1 = works
}

// Frame encodes the self-test result.
func (s SelfTest) Frame() Frame {
	verdict := "FAIL"
	if s.Pass {
		verdict = "PASS"
	}
	keys := make([]byte, 5)
	for i, ok := range s.KeysOK {
		keys[i] = '0'
		if ok {
			keys[i] = '1'
		}
	}
	return Frame{Type: FrameTest, Args: []string{verdict, bit(s.PanelOK), bit(s.LightOK), string(keys)}}
}

func bit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// ParseSelfTest decodes a TEST result frame.
func ParseSelfTest(f Frame) (SelfTest, error) {
	if f.Type != FrameTest || len(f.Args) != 4 || len(f.Args[3]) != 5 {
		return SelfTest{}, fmt.Errorf("%w: want TEST <PASS|FAIL> <panel> <light> <keys>, got %s", ErrFrame, f)
	}
	s := SelfTest{KeyReport: f.Args[3]}
	switch f.Args[0] {
	case "PASS":
		s.Pass = true
	case "FAIL":
	default:
		return SelfTest{}, fmt.Errorf("%w: verdict %q", ErrFrame, f.Args[0])
	}
	var err error
	if s.PanelOK, err = parseBit(f.Args[1]); err != nil {
		return SelfTest{}, err
	}
	if s.LightOK, err = parseBit(f.Args[2]); err != nil {
		return SelfTest{}, err
	}
	for i := range 5 {
		if s.KeysOK[i], err = parseBit(f.Args[3][i : i+1]); err != nil {
			return SelfTest{}, err
		}
	}
	return s, nil
}

func parseBit(s string) (bool, error) {
	switch s {
	case "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, fmt.Errorf("%w: %q is not 0 or 1", ErrFrame, s)
}
