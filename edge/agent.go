// Package edge is the agent beside each keypad. It drives the keypad over
// its serial line, opens vote windows on activations (local HTTP or MQTT),
// turns presses into votes, keeps every vote in a durable outbox before the
// keypad hears "taken", publishes the outbox to the broker at least once,
// sends heartbeats, applies the backend's config and answers commands.
package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/semko/semko/edge/outbox"
	"github.com/semko/semko/protocol"
)

// Errors of the agent.
var (
	// ErrKeypad means a frame could not be written to the keypad in time.
	// An Activate that returns it has still opened its window.
	ErrKeypad = errors.New("keypad did not take the frame")
	// ErrRunning is returned by a second call to Run.
	ErrRunning = errors.New("agent already running")
)

const (
	keypadWriteTimeout = 2 * time.Second
	frameQueue         = 64  // frames read from the keypad, not yet handled
	downstreamQueue    = 64  // MQTT messages received, not yet handled
	recentActivations  = 256 // activation ids remembered for idempotency
	recentKseqs        = 256 // kseqs remembered per keypad boot
	maxRecordRetries   = 64  // closing records waiting for outbox space
)

// Stats is a snapshot of the agent's counters, since it started.
type Stats struct {
	Device            string `json:"device"`
	BootID            string `json:"boot_id"`
	Connected         bool   `json:"connected"`
	Outbox            int    `json:"outbox"` // entries not yet confirmed by the broker
	Published         uint64 `json:"published"`
	Confirmed         uint64 `json:"confirmed"`
	Resent            uint64 `json:"resent"`
	Presses           uint64 `json:"presses"`           // distinct key presses
	DuplicatePresses  uint64 `json:"duplicate_presses"` // KEY resends of a stored press
	VotesValid        uint64 `json:"votes_valid"`
	VotesInvalid      uint64 `json:"votes_invalid"`
	Activations       uint64 `json:"activations"`
	OutboxFull        uint64 `json:"outbox_full"` // presses refused for lack of space
	BadFrames         uint64 `json:"bad_frames"`
	DownstreamDropped uint64 `json:"downstream_dropped"` // MQTT messages dropped, queue full
	Connects          uint64 `json:"connects"`
	FW                string `json:"fw,omitempty"`
	Config            string `json:"config"`
	WindowOpen        bool   `json:"window_open"`
}

// Agent is one edge agent. Create it with New, then call Run.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	kp     io.ReadWriteCloser
	box    *outbox.Outbox
	ln     net.Listener // local HTTP, nil when disabled
	bootID string

	running atomic.Bool

	// mu guards the vote rules and the keypad's state. It is held across
	// the outbox's fsync and the keypad write, so records and frames leave
	// in the order the state changed.
	mu          sync.Mutex
	rules       voteRules
	conf        protocol.Config
	actIDs      *recentIDs
	kseqs       *recentKeys
	lastActTime time.Time
	retry       []pendingRecord // closing records the full outbox refused
	fw          string
	serial      string
	clockOffset time.Duration
	panelOK     bool
	lightOK     bool
	presses     [5]uint64
	errCount    uint64
	lightLevel  int                      // last LIGHT sent, -1 before any
	testWait    chan protocol.SelfTest   // a selftest command waiting for TEST
	infoWait    chan protocol.DeviceInfo // an info command waiting for INFO

	writeMu sync.Mutex // one frame at a time on the serial line

	outboxKick chan struct{} // cap 1: new outbox entries for the publisher
	houseKick  chan struct{} // cap 1: window or config changed
	downstream chan paho.Message
	cmdSlot    chan struct{} // cap 1: one command talks to the keypad at a time

	conn struct {
		sync.Mutex
		client paho.Client // nil while disconnected
		bdseq  uint64
		// held are answers (config applied, command results) made while
		// not connected, the latest per kind, sent once connected: a
		// retained config can be applied before the connection counts as
		// up, and its answer must not be lost.
		held map[protocol.Kind][]byte
	}
	connKick chan struct{} // cap 1: the connection came or went
	beacons  chan beacon   // time beacons received, not yet applied
	clk      edgeClock
	epoch    atomic.Uint64 // bumped on every connect and loss; see publisher
	turn     atomic.Uint32 // connection attempts, rotating the broker list; see brokerOrder

	published, confirmed, resent, votesValid, votesInvalid atomic.Uint64
	activations, outboxFull, badFrames, dupPresses, drops  atomic.Uint64
	connects, pressTotal                                   atomic.Uint64
}

// New checks cfg, opens the outbox in cfg.DataDir and, when cfg.HTTPAddr is
// set, the local HTTP listener. keypad is the serial line: a real port, a
// TCP connection or one end of net.Pipe. Run releases all of it.
func New(cfg Config, keypad io.ReadWriteCloser) (*Agent, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if keypad == nil {
		return nil, fmt.Errorf("%w: keypad missing", ErrConfig)
	}
	log := cfg.Logger.With("device", cfg.Device)
	box, err := outbox.Open(filepath.Join(cfg.DataDir, outboxDir), outbox.Options{MaxBytes: cfg.OutboxMaxBytes, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	conf, ok, err := loadConfig(cfg.DataDir)
	if err != nil {
		box.Close()
		return nil, err
	}
	if !ok {
		conf = cfg.Defaults
	}
	refs, err := loadTimeRefs(cfg.DataDir)
	if err != nil {
		// Unstamped entries of earlier boots then go out as "local".
		log.Error("time references unreadable", "err", err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	a := &Agent{
		cfg: cfg, log: log, kp: keypad, box: box,
		bootID: "b-" + hex.EncodeToString(b[:]),
		conf:   conf, actIDs: newRecentIDs(recentActivations), kseqs: newRecentKeys(recentKseqs),
		fw: "unknown", panelOK: true, lightOK: true, lightLevel: -1,
		outboxKick: make(chan struct{}, 1), houseKick: make(chan struct{}, 1),
		connKick: make(chan struct{}, 1), cmdSlot: make(chan struct{}, 1),
		downstream: make(chan paho.Message, downstreamQueue),
		beacons:    make(chan beacon, 4),
	}
	a.clk.firsts = refs
	a.rules.configure(conf)
	if cfg.HTTPAddr != "" {
		a.ln, err = net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			box.Close()
			return nil, fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
		}
	}
	return a, nil
}

// HTTPAddr returns the local HTTP endpoint's address, or nil when disabled.
// Useful with HTTPAddr "127.0.0.1:0".
func (a *Agent) HTTPAddr() net.Addr {
	if a.ln == nil {
		return nil
	}
	return a.ln.Addr()
}

// Run drives the keypad, the MQTT connection, the publisher and the local
// HTTP endpoint until ctx is done, then closes the keypad, says goodbye on
// MQTT (a retained offline status) and closes the outbox. Entries not yet
// confirmed stay in the outbox for the next Run. A keypad line that ends
// (EOF) is logged; the agent keeps serving MQTT until ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	goFn := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	frames := make(chan protocol.Frame, frameQueue)
	goFn(func(ctx context.Context) { a.readKeypad(ctx, frames) })
	goFn(func(ctx context.Context) { a.handleFrames(ctx, frames) })
	goFn(a.housekeep)
	goFn(a.connectLoop)
	goFn(a.publish)
	goFn(func(ctx context.Context) { a.handleDownstream(ctx, &wg) })
	var srv *http.Server
	if a.ln != nil {
		srv = a.httpServer()
		goFn(func(context.Context) {
			if err := srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("local http stopped", "err", err)
			}
		})
	}
	a.log.Info("edge agent running", "boot_id", a.bootID, "outbox", a.box.Len(), "config", a.Stats().Config)
	a.sendConfigToKeypad()

	<-ctx.Done()
	if srv != nil {
		shutCtx, done := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(shutCtx)
		done()
	}
	// Closing the line unblocks the reader's Read.
	if err := a.kp.Close(); err != nil {
		a.log.Debug("close keypad", "err", err)
	}
	wg.Wait()
	if err := a.box.Close(); err != nil {
		return err
	}
	a.log.Info("edge agent stopped", "outbox", a.box.Len())
	return nil
}

// Activate opens a vote window for act. It returns once the window is open,
// the opening ActivationRecord is durable in the outbox and the keypad is
// armed. An id seen recently is ignored (nil error). A window still open is
// closed first, as not voted. V may be left zero.
func (a *Agent) Activate(ctx context.Context, act protocol.Activate) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if act.V == 0 {
		act.V = protocol.Version
	}
	if err := act.Validate(); err != nil {
		return fmt.Errorf("activate: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.actIDs.has(act.ID) {
		a.log.Debug("activation repeated, ignored", "activation", act.ID)
		return nil
	}
	now := a.cfg.Now()
	if old := a.rules.open; old != nil {
		if err := a.appendRecord(old.pending(a.cfg.Device, false, true)); err != nil {
			return fmt.Errorf("close previous window: %w", err)
		}
		a.rules.open = nil
	}
	w := a.rules.newWindow(act, now)
	// The record's ts is the backend's time when known; the window itself
	// runs on the wall clock.
	ts, synced, mono := a.now()
	if synced {
		w.stamp = stamp(ts, a.lastActTime)
	} else {
		w.stamp, w.unstamped, w.mono = ts, true, mono
	}
	if err := a.appendRecord(w.pending(a.cfg.Device, false, false)); err != nil {
		return fmt.Errorf("open window: %w", err)
	}
	if synced {
		a.lastActTime = w.stamp
	}
	a.rules.open = w
	a.actIDs.add(act.ID)
	a.activations.Add(1)
	kick(a.houseKick)
	a.log.Debug("window open", "activation", act.ID, "window", w.length)
	return a.sendFrame(protocol.Frame{Type: protocol.FrameArm, Args: []string{fmt.Sprint(w.length.Milliseconds())}})
}

// appendRecord writes an activation record to the outbox. Callers hold mu.
func (a *Agent) appendRecord(p pendingRecord) error {
	rec := p.rec
	_, err := a.box.Append(protocol.KindActivation, func(seq uint64) ([]byte, error) {
		rec.Seq = seq
		data, err := protocol.Encode(rec)
		if err == nil && p.unstamped {
			data = markUnstamped(data, a.bootID, p.mono)
		}
		return data, err
	})
	if err != nil {
		return fmt.Errorf("store activation record: %w", err)
	}
	kick(a.outboxKick)
	return nil
}

// closeWindowRecord stores the closing record of w, keeping it for a retry
// if the outbox is full: the window is closed either way. Callers hold mu.
func (a *Agent) closeWindowRecord(w *voteWindow, voted bool) {
	rec := w.pending(a.cfg.Device, voted, true)
	if err := a.appendRecord(rec); err != nil {
		a.log.Warn("closing record deferred", "activation", w.act.ID, "err", err)
		if len(a.retry) < maxRecordRetries {
			a.retry = append(a.retry, rec)
		}
	}
}

// Stats returns a snapshot of the counters.
func (a *Agent) Stats() Stats {
	a.mu.Lock()
	fw, version, open := a.fw, a.conf.Version, a.rules.open != nil
	a.mu.Unlock()
	a.conn.Lock()
	connected := a.conn.client != nil
	a.conn.Unlock()
	return Stats{
		Device: a.cfg.Device, BootID: a.bootID, Connected: connected, Outbox: a.box.Len(),
		Published: a.published.Load(), Confirmed: a.confirmed.Load(), Resent: a.resent.Load(),
		Presses: a.pressTotal.Load(), DuplicatePresses: a.dupPresses.Load(),
		VotesValid: a.votesValid.Load(), VotesInvalid: a.votesInvalid.Load(),
		Activations: a.activations.Load(), OutboxFull: a.outboxFull.Load(), BadFrames: a.badFrames.Load(),
		DownstreamDropped: a.drops.Load(), Connects: a.connects.Load(), FW: fw, Config: version, WindowOpen: open,
	}
}

// kick wakes a goroutine waiting on c without ever blocking.
func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// housekeep closes expired windows, retries deferred closing records,
// keeps the backlight on its schedule and sends heartbeats.
func (a *Agent) housekeep(ctx context.Context) {
	lastBeat := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-a.houseKick:
		}
		a.expireWindow()
		a.applyBacklightSchedule()
		a.mu.Lock()
		beat := time.Duration(a.conf.HeartbeatS) * time.Second
		wait := time.Second
		if w := a.rules.open; w != nil {
			wait = min(wait, max(10*time.Millisecond, w.deadline.Sub(a.cfg.Now())))
		}
		a.mu.Unlock()
		if since := time.Since(lastBeat); since >= beat {
			a.sendHeartbeat()
			lastBeat = time.Now()
		} else {
			wait = min(wait, beat-since)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

func (a *Agent) expireWindow() {
	a.mu.Lock()
	defer a.mu.Unlock()
	retry := a.retry
	a.retry = nil
	for i, rec := range retry {
		if err := a.appendRecord(rec); err != nil {
			a.retry = append(a.retry, retry[i:]...)
			break
		}
	}
	w := a.rules.open
	if w == nil || a.cfg.Now().Before(w.deadline) {
		return
	}
	a.rules.open = nil
	a.closeWindowRecord(w, false)
	a.log.Debug("window expired", "activation", w.act.ID)
	if err := a.sendFrame(protocol.Frame{Type: protocol.FrameDisarm}); err != nil {
		a.log.Warn("disarm keypad", "err", err)
	}
}
