package keypad

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/semko/semko/internal/testwait"
	"github.com/semko/semko/protocol"
)

// host is a scripted edge agent on the other end of the keypad's line.
type host struct {
	t      *testing.T
	conn   net.Conn
	frames chan protocol.Frame
}

// start runs a keypad with opts on a net.Pipe and returns the host end.
// The keypad stops when the test ends.
func start(t *testing.T, opts Options) (*Keypad, *host) {
	t.Helper()
	kpEnd, hostEnd := net.Pipe()
	kp := New(kpEnd, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- kp.Run(ctx) }()
	h := &host{t: t, conn: hostEnd, frames: make(chan protocol.Frame, 64)}
	go func() {
		defer close(h.frames)
		fr := protocol.NewFrameReader(hostEnd)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			h.frames <- f
		}
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		_ = hostEnd.Close()
	})
	return kp, h
}

func (h *host) send(typ string, args ...string) {
	h.t.Helper()
	if _, err := h.conn.Write(protocol.Frame{Type: typ, Args: args}.Bytes()); err != nil {
		h.t.Fatalf("host write %s: %v", typ, err)
	}
}

// next returns the next frame from the keypad, failing after a deadline.
func (h *host) next() protocol.Frame {
	h.t.Helper()
	select {
	case f, ok := <-h.frames:
		if !ok {
			h.t.Fatal("keypad line closed")
		}
		return f
	case <-time.After(5 * time.Second):
		h.t.Fatal("no frame from keypad within 5s")
	}
	return protocol.Frame{}
}

// expect skips frames until one of type typ arrives.
func (h *host) expect(typ string) protocol.Frame {
	h.t.Helper()
	for {
		if f := h.next(); f.Type == typ {
			return f
		}
	}
}

func TestBootInfoTest(t *testing.T) {
	kp, h := start(t, Options{FW: "2.0.1", Serial: "SK5-000042", ClockOffset: -90 * time.Second})
	boot, err := protocol.ParseDeviceInfo(h.next())
	if err != nil {
		t.Fatal(err)
	}
	if boot != (protocol.DeviceInfo{FW: "2.0.1", Serial: "SK5-000042", Model: "SK5"}) {
		t.Fatalf("boot = %+v", boot)
	}

	h.send(protocol.FrameInfo)
	info, err := protocol.ParseDeviceInfo(h.expect(protocol.FrameInfo))
	if err != nil {
		t.Fatal(err)
	}
	if off := time.Until(info.Clock); off > -89*time.Second || off < -91*time.Second {
		t.Fatalf("INFO clock off by %v, want about -90s", off)
	}

	h.send(protocol.FrameTest)
	st, err := protocol.ParseSelfTest(h.expect(protocol.FrameTest))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Pass || !st.PanelOK || !st.LightOK || st.KeyReport != "11111" {
		t.Fatalf("self-test = %+v, want all pass", st)
	}
	if s := kp.State(); s.Boots != 1 || !s.LightOK || !s.PanelOK || s.Light != DefaultLight {
		t.Fatalf("state = %+v", s)
	}
}

func TestPressResendsUntilTaken(t *testing.T) {
	kp, h := start(t, Options{ResendEvery: 10 * time.Millisecond})
	h.expect(protocol.FrameBoot)

	res := make(chan error, 1)
	go func() { res <- kp.Press(context.Background(), 4) }()

	var first protocol.KeyPress
	for i := range 3 {
		kpr, err := protocol.ParseKeyPress(h.expect(protocol.FrameKey))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = kpr
		}
		if kpr != first {
			t.Fatalf("resend %d = %+v, want the same frame %+v", i, kpr, first)
		}
	}
	if first.Key != 4 || first.Seq != 1 {
		t.Fatalf("press = %+v, want key 4 kseq 1", first)
	}
	select {
	case err := <-res:
		t.Fatalf("Press returned %v before TAKEN", err)
	default:
	}
	h.send(protocol.FrameTaken, "1")
	if err := <-res; err != nil {
		t.Fatalf("Press: %v", err)
	}
	if s := kp.State(); s.Taken != 1 || s.Presses != [5]uint64{0, 0, 0, 1, 0} {
		t.Fatalf("state = %+v", s)
	}

	// The next press gets the next kseq; a TAKEN for another kseq is ignored.
	go func() { res <- kp.Press(context.Background(), 2) }()
	kpr, _ := protocol.ParseKeyPress(h.expect(protocol.FrameKey))
	if kpr.Seq != 2 || kpr.Key != 2 {
		t.Fatalf("second press = %+v", kpr)
	}
	h.send(protocol.FrameTaken, "1")
	h.send(protocol.FrameTaken, "2")
	if err := <-res; err != nil {
		t.Fatalf("second Press: %v", err)
	}
}

func TestPressContextAndRange(t *testing.T) {
	kp, h := start(t, Options{ResendEvery: 10 * time.Millisecond})
	h.expect(protocol.FrameBoot)
	if err := kp.Press(context.Background(), 6); !errors.Is(err, ErrKeyRange) {
		t.Fatalf("Press(6) = %v, want ErrKeyRange", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- kp.Press(ctx, 1) }()
	h.expect(protocol.FrameKey)
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("Press after cancel = %v", err)
	}
}

func TestHostCommandsChangeState(t *testing.T) {
	kp, h := start(t, Options{})
	h.expect(protocol.FrameBoot)
	h.send(protocol.FramePanel, "Оценете обслужването * 100%")
	h.send(protocol.FrameLight, "80")
	h.send(protocol.FrameArm, "20000")
	testwait.For(t, "armed with panel and light", func() bool {
		s := kp.State()
		return s.Armed && s.Light == 80 && s.Panel == "Оценете обслужването * 100%"
	})
	h.send(protocol.FrameDisarm)
	testwait.For(t, "disarmed", func() bool { return !kp.State().Armed })

	// Garbage and unknown frames are counted, not fatal.
	if _, err := h.conn.Write([]byte("LIGHT 80*00\nNOPE*00\n")); err != nil {
		t.Fatal(err)
	}
	h.send("NOPE")
	h.send(protocol.FrameLight, "101")
	testwait.For(t, "errors counted", func() bool { return kp.State().Errors == 4 })
	h.send(protocol.FrameInfo)
	h.expect(protocol.FrameInfo)
}

func TestFaultsOnTheWire(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options
		check func(t *testing.T, kp *Keypad, h *host)
	}{
		{
			name: "dead backlight",
			opts: Options{DeadBacklight: true},
			check: func(t *testing.T, kp *Keypad, h *host) {
				h.expect(protocol.FrameBoot)
				if e := h.next(); e.Type != protocol.FrameErr || e.Args[0] != "light" {
					t.Fatalf("after BOOT got %s, want ERR light", e)
				}
				h.send(protocol.FrameTest)
				st, _ := protocol.ParseSelfTest(h.expect(protocol.FrameTest))
				if st.Pass || st.LightOK || !st.PanelOK {
					t.Fatalf("self-test = %+v", st)
				}
			},
		},
		{
			name: "dead panel",
			opts: Options{DeadPanel: true},
			check: func(t *testing.T, kp *Keypad, h *host) {
				h.expect(protocol.FrameBoot)
				if e := h.next(); e.Type != protocol.FrameErr || e.Args[0] != "panel" {
					t.Fatalf("after BOOT got %s, want ERR panel", e)
				}
				h.send(protocol.FramePanel, "hello")
				h.send(protocol.FrameTest)
				st, _ := protocol.ParseSelfTest(h.expect(protocol.FrameTest))
				if st.Pass || st.PanelOK || kp.State().Panel != "" {
					t.Fatalf("self-test = %+v, panel %q", st, kp.State().Panel)
				}
			},
		},
		{
			name: "stuck key",
			opts: Options{StuckKey: 3, StuckEvery: 20 * time.Millisecond, ResendEvery: time.Hour},
			check: func(t *testing.T, kp *Keypad, h *host) {
				for want := uint32(1); want <= 3; want++ {
					kpr, err := protocol.ParseKeyPress(h.expect(protocol.FrameKey))
					if err != nil || kpr.Key != 3 || kpr.Seq != want {
						t.Fatalf("stuck press = %+v, %v; want key 3 kseq %d", kpr, err, want)
					}
					h.send(protocol.FrameTaken, kpr.Frame().Args[1])
				}
				h.send(protocol.FrameTest)
				st, _ := protocol.ParseSelfTest(h.expect(protocol.FrameTest))
				if st.Pass || st.KeyReport != "11011" {
					t.Fatalf("self-test = %+v", st)
				}
			},
		},
		{
			name: "clock drift",
			opts: Options{DriftPerHour: time.Hour * 24 * 365, ClockOffset: time.Minute},
			check: func(t *testing.T, kp *Keypad, h *host) {
				h.expect(protocol.FrameBoot)
				h.send(protocol.FrameInfo)
				a, _ := protocol.ParseDeviceInfo(h.expect(protocol.FrameInfo))
				testwait.For(t, "the clock to drift", func() bool { return kp.Clock().After(a.Clock.Add(2 * time.Second)) })
				h.send(protocol.FrameInfo)
				b, _ := protocol.ParseDeviceInfo(h.expect(protocol.FrameInfo))
				if off := time.Until(a.Clock); off < 59*time.Second {
					t.Fatalf("first INFO offset %v, want about 1m", off)
				}
				if !b.Clock.After(a.Clock.Add(time.Second)) {
					t.Fatalf("clock did not drift: %v then %v", a.Clock, b.Clock)
				}
			},
		},
		{
			name: "reboot loop",
			opts: Options{RebootEvery: 50 * time.Millisecond, ResendEvery: 10 * time.Millisecond},
			check: func(t *testing.T, kp *Keypad, h *host) {
				h.expect(protocol.FrameBoot)
				res := make(chan error, 1)
				go func() { res <- kp.Press(context.Background(), 5) }()
				h.expect(protocol.FrameKey)
				h.expect(protocol.FrameBoot)
				if err := <-res; !errors.Is(err, ErrRebooted) {
					t.Fatalf("Press across reboot = %v, want ErrRebooted", err)
				}
				if kp.State().Boots < 2 {
					t.Fatalf("boots = %d", kp.State().Boots)
				}
			},
		},
		{
			name: "silent keys",
			opts: Options{SilentKeys: true},
			check: func(t *testing.T, kp *Keypad, h *host) {
				h.expect(protocol.FrameBoot)
				if err := kp.Press(context.Background(), 1); !errors.Is(err, ErrSilent) {
					t.Fatalf("Press = %v, want ErrSilent", err)
				}
				// Nothing reached the wire: the next frame is the INFO answer.
				h.send(protocol.FrameInfo)
				if f := h.next(); f.Type != protocol.FrameInfo {
					t.Fatalf("got %s, want INFO", f)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kp, h := start(t, tt.opts)
			tt.check(t, kp, h)
		})
	}
}

// FuzzHostLine feeds arbitrary lines from the host to the keypad's frame
// handling: nothing may panic, and a bad line only counts an error.
func FuzzHostLine(f *testing.F) {
	for _, fr := range protocol.SampleFrames() {
		f.Add(fr.Bytes())
	}
	f.Add([]byte("TAKEN 4294967296*00\n"))
	f.Add([]byte("ARM -1*00\n"))
	f.Fuzz(func(t *testing.T, line []byte) {
		kp := New(nopConn{}, Options{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // answers are dropped instead of waiting for a writer
		fr, err := protocol.ParseFrame(line)
		if err != nil {
			return
		}
		kp.handle(ctx, fr)
		s := kp.State()
		if s.Light < 0 || s.Light > 100 {
			t.Fatalf("light %d out of range", s.Light)
		}
	})
}

type nopConn struct{}

func (nopConn) Read([]byte) (int, error)    { return 0, errors.New("closed") }
func (nopConn) Write(b []byte) (int, error) { return len(b), nil }
func (nopConn) Close() error                { return nil }
