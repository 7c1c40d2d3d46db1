// Package loadgen is a lightweight load generator of simulated keypads for
// the fleet benchmark: one raw paho MQTT client per device, with the
// device's own credentials, publishing valid protocol.Vote payloads at QoS 1
// (and optionally heartbeats) through the real broker.
//
// It skips the edge agent and its serial keypad so that one process can
// drive tens of thousands of units, but it keeps what the guarantees rest
// on: each unit has its own outbox, bounded, and forgets a vote only after
// the broker's PUBACK; after a lost connection it reconnects with jitter
// and resends everything unacknowledged, so votes are delivered at least
// once and each is unique by (device, seq, ts), which InfluxDB turns into
// exactly once.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/semko/semko/protocol"
)

// Device is one simulated keypad's identity.
type Device struct {
	ID, Secret string
}

// Options configures a Fleet. Zero values take the defaults named. It is
// JSON so a generator in another process can be given the same options.
type Options struct {
	// Broker is the MQTT address, e.g. "tcp://127.0.0.1:1883". Required.
	// Several comma-separated addresses (the nodes of a cluster) spread
	// the units: unit i starts at address i mod n and moves one address on
	// at every connection attempt, as the edge agent does.
	Broker  string
	Devices []Device
	// UnitsPerAddr, if positive, spreads units over loopback source
	// addresses (127.10.x.y), this many per address, as keypads behind one
	// site's NAT share an address. It keeps a big fleet under the broker's
	// per-address connection limit and away from ephemeral-port exhaustion.
	// Only for a broker on loopback.
	UnitsPerAddr int
	// Window bounds each unit's publishes awaiting a PUBACK (default 8).
	Window int
	// OutboxLimit bounds each unit's queued votes (default 100,000);
	// Enqueue refuses beyond it rather than grow.
	OutboxLimit int
	// MaxRate caps each unit's publishes per second, to stay under the
	// broker's per-device rate limit (default 40; negative: no cap).
	MaxRate float64
	// Jitter is the longest random wait before a (re)connection, so a fleet
	// dropped at once does not come back in lockstep (default 2 s).
	Jitter time.Duration
	// MaxBackoff caps the wait between failed connection attempts, which
	// doubles from Jitter (default 8 s).
	MaxBackoff time.Duration
	// DialTimeout bounds the TCP connect (default 3 s). When a broker's
	// accept queue overflows the kernel drops SYNs and retries them after
	// 1, 3, 7, 15, 31 s; giving up sooner and retrying after a jittered
	// wait keeps a reconnecting fleet from waiting out that ladder.
	DialTimeout time.Duration
	// Heartbeat, if positive, makes each unit publish a heartbeat this
	// often (QoS 1, not retried).
	Heartbeat time.Duration
	// AckTimeout declares a connection dead when a PUBACK takes longer
	// (default 20 s).
	AckTimeout time.Duration
	Logger     *slog.Logger `json:"-"`
}

// Stats are the fleet's counters.
type Stats struct {
	Units      int
	Connected  int    // units connected now
	Enqueued   uint64 // votes pressed
	Acked      uint64 // votes the broker acknowledged
	Pending    int    // votes pressed and not yet acknowledged
	Publishes  uint64 // vote PUBLISH packets sent, resends included
	Reconnects uint64 // connections after the first, per unit
	Heartbeats uint64 // heartbeats acknowledged
	// ConnectFailures counts failed connection attempts; LastConnectError
	// is the latest one's message.
	ConnectFailures  uint64
	LastConnectError string
	// SlowestConnect is the longest successful connection (TCP, CONNECT,
	// CONNACK) so far.
	SlowestConnect time.Duration
	// AckTimeouts counts connections given up because a PUBACK was
	// overdue (AckTimeout).
	AckTimeouts uint64
	// PublishStalls counts vote publishes paho held for over a second
	// (a publish racing the loss of its connection; see connect).
	PublishStalls uint64
}

// ErrOutboxFull is returned by Enqueue when a unit's outbox is at its limit.
var ErrOutboxFull = errors.New("loadgen: outbox full")

// Fleet is a set of simulated units. Create it with New, start it with Run.
type Fleet struct {
	opts  Options
	log   *slog.Logger
	units []*unit

	connected                                          atomic.Int64
	enqueued, acked, publishes, reconnects, heartbeats atomic.Uint64
	connectFailures                                    atomic.Uint64
	ackTimeouts, publishStalls                         atomic.Uint64
	slowestConnect                                     atomic.Int64
	lastConnectError                                   atomic.Pointer[string]
}

// New checks opts and builds the units; nothing connects until Run.
func New(opts Options) (*Fleet, error) {
	if opts.Broker == "" || len(opts.Devices) == 0 {
		return nil, errors.New("loadgen: Broker and Devices are required")
	}
	if opts.Window <= 0 {
		opts.Window = 8
	}
	if opts.OutboxLimit <= 0 {
		opts.OutboxLimit = 100_000
	}
	if opts.MaxRate == 0 {
		opts.MaxRate = 40
	}
	if opts.Jitter <= 0 {
		opts.Jitter = 2 * time.Second
	}
	if opts.MaxBackoff < opts.Jitter {
		opts.MaxBackoff = max(opts.Jitter, 8*time.Second)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 3 * time.Second
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 20 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Fleet{opts: opts, log: opts.Logger}
	for i, d := range opts.Devices {
		if err := protocol.ValidateDeviceID(d.ID); err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
		u := &unit{f: f, dev: d, kick: make(chan struct{}, 1), next: i,
			topic: protocol.DeviceTopic(d.ID, protocol.KindVote)}
		if opts.UnitsPerAddr > 0 {
			a := i / opts.UnitsPerAddr
			if a >= 250*250 {
				return nil, errors.New("loadgen: too many units for the loopback source addresses")
			}
			u.local = &net.TCPAddr{IP: net.IPv4(127, 10, byte(a/250), byte(a%250+1))}
		}
		f.units = append(f.units, u)
	}
	return f, nil
}

// Len is the number of units.
func (f *Fleet) Len() int { return len(f.units) }

// Run connects every unit and keeps it connected, publishing what its
// outbox holds, until ctx is done. Units connect after a random wait of up
// to Jitter. Run returns once every unit has disconnected.
func (f *Fleet) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, u := range f.units {
		wg.Go(func() { u.run(ctx) })
	}
	wg.Wait()
	return ctx.Err()
}

// Enqueue presses n votes on unit i (score rotating 1..5). The vote's
// timestamp is the press, made unique per unit.
func (f *Fleet) Enqueue(i, n int) error {
	return f.units[i].enqueue(n, time.Now())
}

// EnqueueAll presses n votes on every unit.
func (f *Fleet) EnqueueAll(n int) error {
	for i := range f.units {
		if err := f.Enqueue(i, n); err != nil {
			return err
		}
	}
	return nil
}

// TopUp presses votes on every unit whose outbox holds fewer than level,
// up to level: a closed loop that keeps every unit busy. It returns the
// number pressed.
func (f *Fleet) TopUp(level int) int {
	total := 0
	now := time.Now()
	for _, u := range f.units {
		if n := level - u.pendingLen(); n > 0 {
			if u.enqueue(n, now) == nil {
				total += n
			}
		}
	}
	return total
}

// Stats returns the counters now.
func (f *Fleet) Stats() Stats {
	s := Stats{
		Units: len(f.units), Connected: int(f.connected.Load()),
		Enqueued: f.enqueued.Load(), Acked: f.acked.Load(), Publishes: f.publishes.Load(),
		Reconnects: f.reconnects.Load(), Heartbeats: f.heartbeats.Load(),
		ConnectFailures: f.connectFailures.Load(), SlowestConnect: time.Duration(f.slowestConnect.Load()),
		AckTimeouts: f.ackTimeouts.Load(), PublishStalls: f.publishStalls.Load(),
	}
	if e := f.lastConnectError.Load(); e != nil {
		s.LastConnectError = *e
	}
	for _, u := range f.units {
		s.Pending += u.pendingLen()
	}
	return s
}

// LastPressed reports unit i's last vote's seq and press time (zero before
// any): the latency probe polls InfluxDB for it.
func (f *Fleet) LastPressed(i int) (uint64, time.Time) {
	u := f.units[i]
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seq, u.lastTS
}

// DeviceID is unit i's device id.
func (f *Fleet) DeviceID(i int) string { return f.units[i].dev.ID }

// unit is one simulated keypad.
type unit struct {
	f     *Fleet
	dev   Device
	topic string
	local *net.TCPAddr  // source address, nil for the default
	kick  chan struct{} // a vote was enqueued
	next  int           // index into brokers of the next connection attempt

	mu      sync.Mutex
	seq     uint64
	lastTS  time.Time
	pending []protocol.Vote // oldest first; the first inflight ones are published
}

func (u *unit) pendingLen() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.pending)
}

func (u *unit) enqueue(n int, now time.Time) error {
	if n < 0 {
		return fmt.Errorf("loadgen: enqueue %d votes", n)
	}
	u.mu.Lock()
	if len(u.pending)+n > u.f.opts.OutboxLimit {
		u.mu.Unlock()
		return fmt.Errorf("%w: unit %s", ErrOutboxFull, u.dev.ID)
	}
	for range n {
		u.seq++
		ts := now.UTC()
		// Unique timestamps per device: two points with the same series
		// and time would be one in InfluxDB.
		if !ts.After(u.lastTS) {
			ts = u.lastTS.Add(time.Microsecond)
		}
		u.lastTS = ts
		u.pending = append(u.pending, protocol.Vote{
			V: protocol.Version, Device: u.dev.ID, Seq: u.seq, Time: ts,
			Score: int(u.seq%5) + 1, Scale: protocol.ScaleCSAT5, Channel: protocol.ChannelKeypad, Valid: true,
		})
	}
	u.mu.Unlock()
	u.f.enqueued.Add(uint64(n))
	select {
	case u.kick <- struct{}{}:
	default:
	}
	return nil
}

// run connects, publishes, and on any failure reconnects after a jittered,
// growing wait, until ctx is done.
func (u *unit) run(ctx context.Context) {
	backoff := u.f.opts.Jitter
	first := true
	for ctx.Err() == nil {
		// Full jitter: a random wait in [0, backoff).
		if !sleep(ctx, time.Duration(rand.Int64N(int64(backoff)+1))) {
			return
		}
		c, lost, err := u.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			u.f.connectFailures.Add(1)
			msg := err.Error()
			u.f.lastConnectError.Store(&msg)
			backoff = min(backoff*2, u.f.opts.MaxBackoff)
			continue
		}
		if !first {
			u.f.reconnects.Add(1)
		}
		first = false
		backoff = u.f.opts.Jitter
		u.f.connected.Add(1)
		u.serve(ctx, c, lost)
		u.f.connected.Add(-1)
		c.Disconnect(0)
	}
}

func (u *unit) connect(ctx context.Context) (paho.Client, <-chan struct{}, error) {
	lost := make(chan struct{})
	var once sync.Once
	brokers := strings.Split(u.f.opts.Broker, ",")
	broker := strings.TrimSpace(brokers[u.next%len(brokers)])
	u.next++
	opts := paho.NewClientOptions().AddBroker(broker).
		SetClientID(u.dev.ID).SetUsername(u.dev.ID).SetPassword(u.dev.Secret).
		SetProtocolVersion(4).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).
		SetKeepAlive(60 * time.Second).SetConnectTimeout(30 * time.Second).
		// As the edge agent: a Publish made while paho is tearing a lost
		// connection down blocks until this timeout (paho's default is
		// 30 s), and the unit with it. Broker restarts hit that window.
		SetWriteTimeout(10 * time.Second).
		SetOrderMatters(false).
		SetConnectionLostHandler(func(paho.Client, error) { once.Do(func() { close(lost) }) })
	dialer := &net.Dialer{Timeout: u.f.opts.DialTimeout}
	if u.local != nil {
		dialer.LocalAddr = u.local
	}
	opts.SetDialer(dialer)
	c := paho.NewClient(opts)
	started := time.Now()
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		c.Disconnect(0)
		return nil, nil, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return nil, nil, fmt.Errorf("connect %s after %s: %w", u.dev.ID, time.Since(started).Round(time.Millisecond), err)
	}
	took := int64(time.Since(started))
	for {
		prev := u.f.slowestConnect.Load()
		if took <= prev || u.f.slowestConnect.CompareAndSwap(prev, took) {
			break
		}
	}
	return c, lost, nil
}

// serve publishes the outbox through c, Window at a time, oldest first,
// until the connection is lost or ctx is done. Acknowledged votes leave the
// outbox; the rest stay for the next connection.
func (u *unit) serve(ctx context.Context, c paho.Client, lost <-chan struct{}) {
	type flight struct {
		tok  paho.Token
		sent time.Time
	}
	var inflight []flight
	var interval time.Duration
	if u.f.opts.MaxRate > 0 {
		interval = time.Duration(float64(time.Second) / u.f.opts.MaxRate)
	}
	var nextSend time.Time
	var hbTick <-chan time.Time
	if u.f.opts.Heartbeat > 0 {
		t := time.NewTicker(u.f.opts.Heartbeat)
		defer t.Stop()
		hbTick = t.C
	}
	// One timer wakes the loop for the rate cap or an overdue PUBACK.
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	boot := fmt.Sprintf("b-%x", rand.Uint32())
	start := time.Now()
	for {
		// Fill the window from the outbox, within the rate cap.
		now := time.Now()
		for len(inflight) < u.f.opts.Window && !now.Before(nextSend) {
			u.mu.Lock()
			if len(inflight) >= len(u.pending) {
				u.mu.Unlock()
				break
			}
			v := u.pending[len(inflight)]
			u.mu.Unlock()
			payload, err := protocol.Encode(v)
			if err != nil {
				u.f.log.Error("loadgen: encode vote", "device", u.dev.ID, "err", err)
				return
			}
			before := time.Now()
			tok := c.Publish(u.topic, 1, false, payload)
			if time.Since(before) > time.Second {
				u.f.publishStalls.Add(1) // see SetWriteTimeout in connect
			}
			inflight = append(inflight, flight{tok: tok, sent: now})
			u.f.publishes.Add(1)
			if interval > 0 {
				nextSend = now.Add(interval)
			}
		}
		var done <-chan struct{}
		wakeAt := now.Add(time.Hour)
		if len(inflight) > 0 {
			done = inflight[0].tok.Done()
			wakeAt = inflight[0].sent.Add(u.f.opts.AckTimeout)
		}
		if len(inflight) < u.f.opts.Window && nextSend.After(now) && nextSend.Before(wakeAt) {
			wakeAt = nextSend
		}
		wake.Reset(wakeAt.Sub(now))
		select {
		case <-ctx.Done():
			return
		case <-lost:
			return
		case <-wake.C:
			if len(inflight) > 0 && time.Since(inflight[0].sent) >= u.f.opts.AckTimeout {
				u.f.log.Debug("loadgen: PUBACK overdue, reconnecting", "device", u.dev.ID)
				u.f.ackTimeouts.Add(1)
				return
			}
		case <-u.kick:
		case <-hbTick:
			u.heartbeat(c, boot, start)
		case <-done:
			if err := inflight[0].tok.Error(); err != nil {
				return
			}
			// PUBACKs come in order on one connection, so the oldest
			// flight is the oldest pending vote.
			u.mu.Lock()
			u.pending = u.pending[1:]
			u.mu.Unlock()
			inflight = inflight[1:]
			u.f.acked.Add(1)
		}
	}
}

// heartbeat publishes one heartbeat without waiting for it: a lost one is
// replaced by the next.
func (u *unit) heartbeat(c paho.Client, boot string, start time.Time) {
	now := time.Now().UTC()
	hb := protocol.Heartbeat{
		V: protocol.Version, Device: u.dev.ID, Time: now, BootID: boot, FW: "1.4.2",
		UptimeS: int64(now.Sub(start) / time.Second), TempC: 30, PanelOK: true, BacklightOK: true,
	}
	payload, err := protocol.Encode(hb)
	if err != nil {
		return
	}
	tok := c.Publish(protocol.DeviceTopic(u.dev.ID, protocol.KindHeartbeat), 1, false, payload)
	go func() {
		// Bounded by the connection: paho completes every token when the
		// connection ends.
		if tok.WaitTimeout(u.f.opts.AckTimeout) && tok.Error() == nil {
			u.f.heartbeats.Add(1)
		}
	}()
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
