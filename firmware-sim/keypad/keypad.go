// Package keypad simulates the firmware of one five-button Semko keypad. It
// speaks the serial line protocol of package protocol over any
// io.ReadWriteCloser (in tests and fleets, one end of a net.Pipe whose other
// end belongs to an edge agent) and can inject the field faults that the
// backend's diagnostics must recognise: a stuck key, a dead backlight or
// panel, clock drift, a reboot loop and keys that never reach the wire.
package keypad

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/semko/semko/protocol"
)

// Errors returned by Press.
var (
	// ErrKeyRange means the key is not 1..5.
	ErrKeyRange = errors.New("key outside 1..5")
	// ErrSilent means the keypad has the silent-keys fault: the press was
	// swallowed before it reached the wire.
	ErrSilent = errors.New("keys are silent")
	// ErrRebooted means the keypad rebooted while the press was pending, so
	// it forgot the press without it being taken.
	ErrRebooted = errors.New("keypad rebooted before the press was taken")
	// ErrStopped means Run has ended.
	ErrStopped = errors.New("keypad stopped")
)

// Default values of Options.
const (
	DefaultFW          = "1.4.2"
	DefaultModel       = "SK5"
	DefaultResendEvery = 500 * time.Millisecond
	// DefaultLight is the backlight level after a boot, before the host
	// sends LIGHT.
	DefaultLight = 50
)

// writeQueue bounds the frames waiting for the serial line. The line is
// slow on real hardware; when the host stops reading, writers block on the
// queue (or their context) instead of piling up frames.
const writeQueue = 32

// Options configure one simulated keypad. The zero value is a healthy SK5
// keypad with a correct clock.
type Options struct {
	FW, Serial, Model string

	// ClockOffset is added to the real clock; DriftPerHour more is added for
	// every hour since New, so a drifting clock moves away steadily.
	ClockOffset  time.Duration
	DriftPerHour time.Duration
	// Now is the real clock; nil means time.Now.
	Now func() time.Time

	// ResendEvery is how often an untaken KEY is sent again (default 500 ms).
	ResendEvery time.Duration

	// Faults.
	StuckKey      int           // 1..5: this key presses itself every StuckEvery
	StuckEvery    time.Duration // default 10 s when StuckKey is set
	DeadBacklight bool          // TEST reports light 0; "ERR light ..." once at each boot
	DeadPanel     bool          // TEST reports panel 0; PANEL is ignored; "ERR panel ..." at each boot
	RebootEvery   time.Duration // > 0: BOOT again this often, forgetting pending presses and state
	SilentKeys    bool          // presses never reach the wire

	Logger *slog.Logger
}

// State is what a test can observe of the keypad's front.
type State struct {
	Armed      bool      // keys lit, a vote is expected
	ArmedUntil time.Time // real-clock end of the window from the last ARM
	Panel      string    // instruction text shown (empty on a dead panel)
	Light      int       // backlight level commanded (0..100)
	LightOK    bool      // false with a dead backlight
	PanelOK    bool      // false with a dead panel
	Boots      int       // BOOT frames sent
	Presses    [5]uint64 // KEY frames first sent, per key (resends not counted)
	Taken      uint64    // presses acknowledged with TAKEN
	Errors     uint64    // malformed or unknown frames received
}

// Keypad is one simulated keypad. Create it with New, start it with Run,
// press keys with Press from any goroutine.
type Keypad struct {
	conn  io.ReadWriteCloser
	opts  Options
	log   *slog.Logger
	start time.Time // real clock at New, for drift

	out     chan protocol.Frame
	stopped chan struct{} // closed when Run ends

	mu      sync.Mutex
	state   State
	kseq    uint32
	boot    uint64                   // increments on every boot; pending presses belong to one boot
	pending map[uint32]chan struct{} // kseq -> closed by TAKEN
	lost    chan struct{}            // closed (and replaced) on every reboot
}

// New prepares a keypad on conn. Run owns conn from then on and closes it
// when it returns.
func New(conn io.ReadWriteCloser, opts Options) *Keypad {
	if opts.FW == "" {
		opts.FW = DefaultFW
	}
	if opts.Model == "" {
		opts.Model = DefaultModel
	}
	if opts.Serial == "" {
		opts.Serial = opts.Model + "-000000"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ResendEvery <= 0 {
		opts.ResendEvery = DefaultResendEvery
	}
	if opts.StuckKey != 0 && opts.StuckEvery <= 0 {
		opts.StuckEvery = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Keypad{
		conn:    conn,
		opts:    opts,
		log:     log.With("keypad", opts.Serial),
		start:   opts.Now(),
		out:     make(chan protocol.Frame, writeQueue),
		stopped: make(chan struct{}),
		pending: make(map[uint32]chan struct{}),
		lost:    make(chan struct{}),
	}
}

// Clock is the keypad's own clock: the real clock plus the offset and the
// drift accumulated since New.
func (k *Keypad) Clock() time.Time {
	now := k.opts.Now()
	drift := time.Duration(float64(k.opts.DriftPerHour) * now.Sub(k.start).Hours())
	return now.Add(k.opts.ClockOffset + drift)
}

// State returns a copy of the keypad's observable state.
func (k *Keypad) State() State {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.state
	if s.Armed && !s.ArmedUntil.IsZero() && k.opts.Now().After(s.ArmedUntil) {
		s.Armed = false
	}
	return s
}

// Run sends BOOT and serves the host until ctx is done, the host closes the
// line (both nil) or the line fails. It closes conn before returning.
func (k *Keypad) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		_ = k.conn.Close() // unblocks the reader and writer
		wg.Wait()
		close(k.stopped)
	}()

	errc := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errc <- k.writeLoop(ctx) }()
	go func() { defer wg.Done(); errc <- k.readLoop(ctx) }()

	k.reboot(ctx)

	var stuck, reboot <-chan time.Time
	var stuckBusy atomic.Bool
	if k.opts.StuckKey >= 1 && k.opts.StuckKey <= 5 {
		t := time.NewTicker(k.opts.StuckEvery)
		defer t.Stop()
		stuck = t.C
	}
	if k.opts.RebootEvery > 0 {
		t := time.NewTicker(k.opts.RebootEvery)
		defer t.Stop()
		reboot = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if ctx.Err() != nil || err == nil {
				return nil
			}
			return err
		case <-stuck:
			// The stuck contact presses on its own; its presses are resent
			// until taken like any other, by a goroutine Run waits for. One
			// at a time, so a host that never answers costs one goroutine.
			if !stuckBusy.CompareAndSwap(false, true) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer stuckBusy.Store(false)
				if err := k.press(ctx, k.opts.StuckKey); err != nil && ctx.Err() == nil {
					k.log.Debug("stuck key press not taken", "err", err)
				}
			}()
		case <-reboot:
			k.reboot(ctx)
		}
	}
}

// reboot forgets everything a power cycle loses, then announces itself.
func (k *Keypad) reboot(ctx context.Context) {
	k.mu.Lock()
	k.boot++
	k.kseq = 0
	clear(k.pending)
	close(k.lost)
	k.lost = make(chan struct{})
	k.state.Armed = false
	k.state.ArmedUntil = time.Time{}
	k.state.Panel = ""
	k.state.Light = DefaultLight
	k.state.LightOK = !k.opts.DeadBacklight
	k.state.PanelOK = !k.opts.DeadPanel
	k.state.Boots++
	k.mu.Unlock()

	info := protocol.DeviceInfo{FW: k.opts.FW, Serial: k.opts.Serial, Model: k.opts.Model}
	k.send(ctx, info.BootFrame())
	if k.opts.DeadBacklight {
		k.send(ctx, protocol.Frame{Type: protocol.FrameErr, Args: []string{"light", "backlight current 0 mA"}})
	}
	if k.opts.DeadPanel {
		k.send(ctx, protocol.Frame{Type: protocol.FrameErr, Args: []string{"panel", "panel does not respond"}})
	}
}

// send queues f for the line; it gives up when ctx is done or Run ended.
func (k *Keypad) send(ctx context.Context, f protocol.Frame) bool {
	select {
	case k.out <- f:
		return true
	case <-ctx.Done():
	case <-k.stopped:
	}
	return false
}

func (k *Keypad) writeLoop(ctx context.Context) error {
	var buf []byte
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-k.out:
			buf = protocol.AppendFrame(buf[:0], f)
			if _, err := k.conn.Write(buf); err != nil {
				return fmt.Errorf("write %s: %w", f.Type, err)
			}
		}
	}
}

func (k *Keypad) readLoop(ctx context.Context) error {
	fr := protocol.NewFrameReader(k.conn)
	for {
		f, err := fr.ReadFrame()
		if errors.Is(err, protocol.ErrFrame) || errors.Is(err, protocol.ErrChecksum) {
			k.countError("bad frame from host", err)
			continue
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) {
			return nil // the host hung up: the keypad has nobody to talk to
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		k.handle(ctx, f)
	}
}

func (k *Keypad) countError(msg string, err error) {
	k.mu.Lock()
	k.state.Errors++
	k.mu.Unlock()
	k.log.Debug(msg, "err", err)
}

// handle obeys one frame from the host.
func (k *Keypad) handle(ctx context.Context, f protocol.Frame) {
	switch f.Type {
	case protocol.FrameInfo:
		info := protocol.DeviceInfo{FW: k.opts.FW, Serial: k.opts.Serial, Model: k.opts.Model, Clock: k.Clock()}
		k.send(ctx, info.InfoFrame())
	case protocol.FrameTest:
		k.send(ctx, k.selfTest().Frame())
	case protocol.FrameArm:
		ms, err := oneInt(f, 0, 3600_000)
		if err != nil {
			k.countError("bad ARM", err)
			return
		}
		k.mu.Lock()
		k.state.Armed = true
		k.state.ArmedUntil = time.Time{}
		if ms > 0 {
			k.state.ArmedUntil = k.opts.Now().Add(time.Duration(ms) * time.Millisecond)
		}
		k.mu.Unlock()
	case protocol.FrameDisarm:
		k.mu.Lock()
		k.state.Armed = false
		k.state.ArmedUntil = time.Time{}
		k.mu.Unlock()
	case protocol.FramePanel:
		if len(f.Args) != 1 {
			k.countError("bad PANEL", fmt.Errorf("%w: %s", protocol.ErrFrame, f))
			return
		}
		k.mu.Lock()
		if !k.opts.DeadPanel {
			k.state.Panel = f.Args[0]
		}
		k.mu.Unlock()
	case protocol.FrameLight:
		level, err := oneInt(f, 0, 100)
		if err != nil {
			k.countError("bad LIGHT", err)
			return
		}
		k.mu.Lock()
		k.state.Light = int(level)
		k.mu.Unlock()
	case protocol.FrameTaken:
		seq, err := oneInt(f, 0, 1<<32-1)
		if err != nil {
			k.countError("bad TAKEN", err)
			return
		}
		k.mu.Lock()
		if done, ok := k.pending[uint32(seq)]; ok {
			delete(k.pending, uint32(seq))
			close(done)
			k.state.Taken++
		}
		k.mu.Unlock()
	default:
		k.countError("unknown frame", fmt.Errorf("%w: type %q", protocol.ErrFrame, f.Type))
	}
}

func (k *Keypad) selfTest() protocol.SelfTest {
	st := protocol.SelfTest{
		PanelOK: !k.opts.DeadPanel,
		LightOK: !k.opts.DeadBacklight,
		KeysOK:  [5]bool{true, true, true, true, true},
	}
	if k.opts.StuckKey >= 1 && k.opts.StuckKey <= 5 {
		st.KeysOK[k.opts.StuckKey-1] = false
	}
	if k.opts.SilentKeys {
		st.KeysOK = [5]bool{}
	}
	st.Pass = st.PanelOK && st.LightOK && st.KeysOK == [5]bool{true, true, true, true, true}
	return st
}

func oneInt(f protocol.Frame, lo, hi int64) (int64, error) {
	if len(f.Args) != 1 {
		return 0, fmt.Errorf("%w: %s wants one argument", protocol.ErrFrame, f.Type)
	}
	n, err := strconv.ParseInt(f.Args[0], 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%w: %s argument %q not in %d..%d", protocol.ErrFrame, f.Type, f.Args[0], lo, hi)
	}
	return n, nil
}

// Press presses key (1..5) once: it sends KEY <key> <kseq> <clock_ms> and
// repeats the same frame every ResendEvery until the host answers
// TAKEN <kseq>. It returns nil once taken, ErrRebooted if the keypad
// rebooted first, ErrSilent with the silent-keys fault, or the context's
// error. A press that returns an error may still have reached the host.
func (k *Keypad) Press(ctx context.Context, key int) error {
	if key < 1 || key > 5 {
		return fmt.Errorf("press %d: %w", key, ErrKeyRange)
	}
	if k.opts.SilentKeys {
		return fmt.Errorf("press %d: %w", key, ErrSilent)
	}
	return k.press(ctx, key)
}

func (k *Keypad) press(ctx context.Context, key int) error {
	k.mu.Lock()
	k.kseq++
	seq := k.kseq
	done := make(chan struct{})
	k.pending[seq] = done
	lost := k.lost
	k.state.Presses[key-1]++
	k.mu.Unlock()

	f := protocol.KeyPress{Key: key, Seq: seq, Clock: k.Clock()}.Frame()
	t := time.NewTicker(k.opts.ResendEvery)
	defer t.Stop()
	for {
		if !k.send(ctx, f) {
			break
		}
		select {
		case <-done:
			return nil
		case <-lost:
			return fmt.Errorf("press %d kseq %d: %w", key, seq, ErrRebooted)
		case <-ctx.Done():
		case <-k.stopped:
		case <-t.C:
			continue
		}
		break
	}
	k.mu.Lock()
	if k.pending[seq] == done {
		delete(k.pending, seq)
	}
	k.mu.Unlock()
	select {
	case <-done: // taken just as we gave up
		return nil
	default:
	}
	if ctx.Err() != nil {
		return fmt.Errorf("press %d kseq %d: %w", key, seq, ctx.Err())
	}
	return fmt.Errorf("press %d kseq %d: %w", key, seq, ErrStopped)
}
