package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/semko/semko/protocol"
)

// The MQTT side. Each connection attempt builds a fresh paho client with
// auto-reconnect off: the will must carry a new BDSeq every time, and paho
// reconnects in lockstep across a fleet (no jitter), so connectLoop does
// the reconnecting with full-jitter backoff itself. CleanSession is true:
// the outbox, not the broker's session, is what guarantees delivery, and a
// clean session keeps stale activations queued while offline from opening
// windows long after the customer left; the retained config still arrives
// on every connect.

const (
	keepAlive      = 30 * time.Second
	connectTimeout = 10 * time.Second
	goodbyeTimeout = time.Second
	subTimeout     = 10 * time.Second
)

// client returns the connected client, or nil.
func (a *Agent) client() paho.Client {
	a.conn.Lock()
	defer a.conn.Unlock()
	return a.conn.client
}

func (a *Agent) setClient(c paho.Client, bdseq uint64) {
	a.conn.Lock()
	a.conn.client, a.conn.bdseq = c, bdseq
	a.conn.Unlock()
	kick(a.connKick)
}

// status builds a birth or death, leaving out a firmware string that is not
// a valid token rather than failing.
func (a *Agent) status(online bool, bdseq uint64) []byte {
	a.mu.Lock()
	s := protocol.Status{V: protocol.Version, Device: a.cfg.Device, Time: a.timeNow(), Online: online,
		BootID: a.bootID, FW: a.fw, BDSeq: bdseq}
	a.mu.Unlock()
	data, err := protocol.Encode(s)
	if err != nil {
		s.FW = ""
		data, _ = json.Marshal(s)
	}
	return data
}

func (a *Agent) newClient(bdseq uint64, lost chan<- error, subs chan<- paho.Token) paho.Client {
	o := paho.NewClientOptions()
	for _, u := range brokerOrder(a.cfg.Device, a.cfg.Broker, a.turn.Add(1)-1) {
		o.AddBroker(u)
	}
	o.SetClientID(a.cfg.Device).
		SetUsername(a.cfg.Device).
		SetPassword(a.cfg.Secret).
		SetCleanSession(true).
		// MQTT 3.1.1 only: without it paho retries a refused CONNECT as 3.1,
		// doubling every failed login in the broker's counters.
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(false).
		SetKeepAlive(keepAlive).
		SetPingTimeout(10*time.Second).
		SetConnectTimeout(connectTimeout).
		SetWriteTimeout(10*time.Second).
		SetBinaryWill(protocol.DeviceTopic(a.cfg.Device, protocol.KindStatus), a.status(false, bdseq), 1, true).
		SetOnConnectHandler(func(c paho.Client) {
			a.epoch.Add(1)
			filters := map[string]byte{}
			for _, f := range protocol.DeviceFilter(a.cfg.Device) {
				filters[f] = 1
			}
			filters[protocol.TimeTopic] = 0
			// Never wait inside a paho handler: connectLoop checks the token.
			tok := c.SubscribeMultiple(filters, a.onMessage)
			select {
			case subs <- tok:
			default:
			}
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			a.epoch.Add(1)
			select {
			case lost <- err:
			default:
			}
		})
	if a.cfg.TLS != nil {
		o.SetTLSConfig(a.cfg.TLS)
	}
	return paho.NewClient(o)
}

// onMessage runs on paho's goroutine: hand off, never block. A message
// dropped here is counted; config is retained and arrives again on the
// next connect, activations and commands are the backend's to retry.
func (a *Agent) onMessage(_ paho.Client, m paho.Message) {
	if m.Topic() == protocol.TimeTopic {
		// Read the monotonic clock here, not after the queue. A beacon
		// dropped is replaced by the next one; a retained one is stale.
		if m.Retained() {
			return
		}
		select {
		case a.beacons <- beacon{payload: m.Payload(), mono: a.cfg.Mono()}:
		default:
		}
		return
	}
	select {
	case a.downstream <- m:
	default:
		a.drops.Add(1)
		a.log.Warn("downstream queue full, message dropped", "topic", m.Topic())
	}
}

// backoff returns a full-jitter delay for the n-th consecutive failure
// (n = 0 after a connection that worked).
func (a *Agent) backoff(n int) time.Duration {
	d := a.cfg.ReconnectMin
	for i := 0; i < n && d < a.cfg.ReconnectMax; i++ {
		d *= 2
	}
	d = min(d, a.cfg.ReconnectMax)
	return rand.N(d) + 1
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// connectLoop keeps one connection up until ctx is done.
func (a *Agent) connectLoop(ctx context.Context) {
	bdseq, err := loadBDSeq(a.cfg.DataDir)
	if err != nil {
		a.log.Error("bdseq unreadable, starting over", "err", err)
	}
	failures := 0
	for ctx.Err() == nil {
		bdseq++
		if err := saveBDSeq(a.cfg.DataDir, bdseq); err != nil {
			// A repeated bdseq only blurs late-will detection; keep going.
			a.log.Error("persist bdseq", "err", err)
		}
		lost := make(chan error, 1)
		subs := make(chan paho.Token, 1)
		c := a.newClient(bdseq, lost, subs)
		tok := c.Connect()
		select {
		case <-tok.Done():
		case <-ctx.Done():
			c.Disconnect(0)
			return
		}
		if err := tok.Error(); err != nil {
			failures++
			wait := a.backoff(failures)
			a.log.Warn("mqtt connect failed", "err", err, "retry_in", wait)
			if !sleepCtx(ctx, wait) {
				return
			}
			continue
		}
		failures = 0
		// Count as connected, and say so in the birth, only once the
		// downstream subscriptions are through: the session is clean, so an
		// activation the backend sends before them would find no subscriber.
		switch a.awaitSubscribed(ctx, c, lost, subs) {
		case subscribeStopped:
			return
		case subscribeFailed:
			if !sleepCtx(ctx, a.backoff(0)) {
				return
			}
			continue
		}
		a.connects.Add(1)
		c.Publish(protocol.DeviceTopic(a.cfg.Device, protocol.KindStatus), 1, true, a.status(true, bdseq))
		a.setClient(c, bdseq)
		a.sendHeld(c)
		a.log.Info("mqtt connected", "brokers", a.cfg.Broker, "bdseq", bdseq)
		if !a.stayConnected(ctx, c, bdseq, lost) {
			return
		}
		if !sleepCtx(ctx, a.backoff(0)) {
			return
		}
	}
}

type subscribeResult int

const (
	subscribed subscribeResult = iota
	subscribeFailed
	subscribeStopped
)

// awaitSubscribed waits for the SUBACK of the downstream subscriptions that
// the connect handler sent. On failure or a lost connection it disconnects;
// on ctx done too, without a goodbye (the edge never said it was online).
func (a *Agent) awaitSubscribed(ctx context.Context, c paho.Client, lost <-chan error, subs <-chan paho.Token) subscribeResult {
	fail := func(msg string, err error) subscribeResult {
		a.log.Warn(msg, "err", err)
		a.epoch.Add(1)
		c.Disconnect(0)
		return subscribeFailed
	}
	timeout := time.NewTimer(subTimeout)
	defer timeout.Stop()
	select {
	case tok := <-subs:
		select {
		case <-tok.Done():
		case err := <-lost:
			return fail("mqtt connection lost before subscribing", err)
		case <-timeout.C:
			return fail("subscribe to downstream topics timed out; reconnecting", nil)
		case <-ctx.Done():
			c.Disconnect(0)
			return subscribeStopped
		}
		if err := tok.Error(); err != nil {
			return fail("subscribe to downstream topics failed; reconnecting", err)
		}
		return subscribed
	case err := <-lost:
		return fail("mqtt connection lost before subscribing", err)
	case <-timeout.C:
		return fail("subscribe to downstream topics never sent; reconnecting", nil)
	case <-ctx.Done():
		c.Disconnect(0)
		return subscribeStopped
	}
}

// stayConnected waits until the connection is lost (true: reconnect) or ctx
// is done (false: said goodbye and disconnected).
func (a *Agent) stayConnected(ctx context.Context, c paho.Client, bdseq uint64, lost <-chan error) bool {
	for {
		select {
		case err := <-lost:
			a.setClient(nil, 0)
			a.log.Warn("mqtt connection lost", "err", err)
			return true
		case <-ctx.Done():
			a.setClient(nil, 0)
			// A clean goodbye: the broker discards the will on DISCONNECT,
			// so publish the death ourselves.
			t := c.Publish(protocol.DeviceTopic(a.cfg.Device, protocol.KindStatus), 1, true, a.status(false, bdseq))
			t.WaitTimeout(goodbyeTimeout)
			c.Disconnect(250)
			return false
		}
	}
}

// publishDirect sends a message that does not go through the outbox
// (heartbeats, answers): when it is lost, the next one replaces it.
func (a *Agent) publishDirect(kind protocol.Kind, v protocol.Validator) {
	data, err := protocol.Encode(v)
	if err != nil {
		a.log.Error("encode message", "kind", kind, "err", err)
		return
	}
	a.conn.Lock()
	c := a.conn.client
	if c == nil {
		// Checked and held under the lock setClient takes, so an answer
		// is either published now or found by sendHeld after connecting.
		if a.conn.held == nil {
			a.conn.held = map[protocol.Kind][]byte{}
		}
		a.conn.held[kind] = data
		a.conn.Unlock()
		a.log.Debug("not connected, message held until connected", "kind", kind)
		return
	}
	a.conn.Unlock()
	c.Publish(protocol.DeviceTopic(a.cfg.Device, kind), 1, kind.Retained(), data)
}

// sendHeld publishes the answers publishDirect held while not connected.
func (a *Agent) sendHeld(c paho.Client) {
	a.conn.Lock()
	held := a.conn.held
	a.conn.held = nil
	a.conn.Unlock()
	for kind, data := range held {
		c.Publish(protocol.DeviceTopic(a.cfg.Device, kind), 1, kind.Retained(), data)
	}
}

// flight is one outbox entry published and not yet confirmed.
type flight struct {
	tok    paho.Token
	client paho.Client
	epoch  uint64
	sent   time.Time
}

// publish drains the outbox in order with up to MaxInFlight QoS 1
// publishes outstanding. paho can complete a token with a nil error across
// a drop and reconnect although nothing was delivered (paho #563, #613), so
// a token confirms its entry only if the connection epoch did not move
// between the publish and the check; otherwise the entry is sent again.
// Duplicates are fine (the backend is idempotent), losses are not.
func (a *Agent) publish(ctx context.Context) {
	inflight := make(map[uint64]flight, a.cfg.MaxInFlight)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c := a.client()
		if c == nil {
			clear(inflight)
		} else {
			a.settle(c, inflight)
			a.fill(c, inflight)
		}
		wait := time.Hour
		if len(inflight) > 0 {
			wait = 10 * time.Millisecond
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-a.outboxKick:
		case <-a.connKick:
		case <-timer.C:
		}
	}
}

// settle acknowledges confirmed entries and forgets failed or overdue ones,
// which fill then publishes again.
func (a *Agent) settle(c paho.Client, inflight map[uint64]flight) {
	epoch := a.epoch.Load()
	for seq, f := range inflight {
		select {
		case <-f.tok.Done():
			delete(inflight, seq)
			if f.tok.Error() == nil && f.client == c && f.epoch == epoch {
				// A round trip, up to the loop's polling interval over;
				// the time reference takes half the least recent one as
				// the beacon's latency.
				a.addRTT(time.Since(f.sent))
				if err := a.box.Ack(seq); err != nil {
					a.log.Warn("ack outbox entry", "seq", seq, "err", err)
					continue
				}
				a.confirmed.Add(1)
				continue
			}
			a.resent.Add(1)
		default:
			if f.client != c || f.epoch != epoch || time.Since(f.sent) > a.cfg.PublishTimeout {
				delete(inflight, seq)
				a.resent.Add(1)
			}
		}
	}
}

func (a *Agent) fill(c paho.Client, inflight map[uint64]flight) {
	if len(inflight) >= a.cfg.MaxInFlight {
		return
	}
	epoch := a.epoch.Load()
	for _, e := range a.box.Pending(a.cfg.MaxInFlight) {
		if len(inflight) >= a.cfg.MaxInFlight {
			return
		}
		if _, ok := inflight[e.Seq]; ok {
			continue
		}
		data, ok, err := a.publishable(e)
		if err != nil {
			// Cannot happen for entries this agent wrote; send as stored
			// rather than hold the outbox forever.
			a.log.Error("unstamped entry unreadable, sent as stored", "seq", e.Seq, "err", err)
			data, ok = e.Data, true
		}
		if !ok {
			continue // waits for this boot's first time reference
		}
		tok := c.Publish(protocol.DeviceTopic(a.cfg.Device, e.Kind), 1, false, data)
		inflight[e.Seq] = flight{tok: tok, client: c, epoch: epoch, sent: time.Now()}
		a.published.Add(1)
	}
}

// sendHeartbeat publishes the device's health.
func (a *Agent) sendHeartbeat() {
	a.mu.Lock()
	ts, synced, mono := a.now()
	a.clk.mu.Lock()
	rtt := a.clk.rtt
	a.clk.mu.Unlock()
	hb := protocol.Heartbeat{
		V: protocol.Version, Device: a.cfg.Device, Time: ts, BootID: a.bootID, FW: a.fw,
		UptimeS: int64(mono / time.Second), Outbox: a.box.Len(), TimeSynced: synced, RTTMS: rtt.Milliseconds(),
		ClockOffsetMS: a.clockOffset.Milliseconds(), Presses: a.presses, Errors: a.errCount,
		PanelOK: a.panelOK, BacklightOK: a.lightOK, Config: a.conf.Version,
	}
	a.mu.Unlock()
	if synced {
		hb.TimeOffsetMS = ts.Sub(a.cfg.Now()).Milliseconds()
	}
	if a.cfg.LinkRSSI != nil {
		hb.RSSI = a.cfg.LinkRSSI()
	}
	hb.UptimeS = max(hb.UptimeS, 0)
	if hb.Validate() != nil {
		hb.FW = "unknown" // a keypad firmware string that is not a token
	}
	a.publishDirect(protocol.KindHeartbeat, hb)
}

// answerf is a short helper for error strings sent back to the backend.
func answerf(format string, args ...any) string {
	s := fmt.Sprintf(format, args...)
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}
