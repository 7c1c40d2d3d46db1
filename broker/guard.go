package broker

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/semko/semko/internal/connlimit"
)

// guardListener is a mochi listener that defends the broker before MQTT
// begins, which mochi's own listeners do not:
//
//   - it refuses a remote address's connections past MaxConnsPerAddr, so one
//     host cannot use up the broker's memory and file descriptors;
//   - it closes a connection that has not delivered its CONNECT packet
//     (TLS handshake included) within ConnectTimeout. mochi waits for it
//     forever, holding two goroutines and a write queue per connection;
//   - it counts and logs connections that end before a session for a
//     reason worth knowing (timeout, oversized or malformed CONNECT) and
//     every connection closed for an oversized packet;
//   - it survives Accept errors such as EMFILE, after which mochi's Net
//     listener would stop accepting for good.
type guardListener struct {
	id    string
	ln    net.Listener
	tls   *tls.Config // nil for plain MQTT
	b     *Broker
	addrs *connlimit.Limiter

	closed atomic.Bool
	mu     sync.Mutex
	live   map[*guardedConn]struct{} // connections being served
	// serving counts the goroutines that call mochi's establish. Close
	// waits for them: mochi adds each client to its WaitGroup from inside
	// establish, and an Add racing mochi's Wait is a data race (and a
	// client mochi's Close would not wait for).
	serving sync.WaitGroup
}

var _ listeners.Listener = (*guardListener)(nil)

func newGuardListener(id string, ln net.Listener, tc *tls.Config, b *Broker) *guardListener {
	return &guardListener{id: id, ln: ln, tls: tc, b: b, addrs: b.addrs, live: make(map[*guardedConn]struct{})}
}

func (l *guardListener) ID() string                { return l.id }
func (l *guardListener) Address() string           { return l.ln.Addr().String() }
func (l *guardListener) Protocol() string          { return l.ln.Addr().Network() }
func (l *guardListener) Init(_ *slog.Logger) error { return nil }

// Serve accepts until Close. mochi runs it on a goroutine of its own.
func (l *guardListener) Serve(establish listeners.EstablishFn) {
	var backoff time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if l.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, or a similar passing trouble: wait
			// and go on, as net/http does, rather than stop serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.b.warn("mqtt accept failed", "listener", l.id, "error", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		l.serveConn(conn, establish)
	}
}

func (l *guardListener) serveConn(conn net.Conn, establish listeners.EstablishFn) {
	key := connlimit.Key(conn.RemoteAddr())
	if !l.addrs.Acquire(key) {
		l.b.count.connLimited.Add(1)
		l.b.warn("mqtt connection refused: too many from one address",
			"remote", conn.RemoteAddr().String(), "limit", l.b.opts.MaxConnsPerAddr)
		conn.Close()
		return
	}
	// The deadline is set on the raw connection, not through guardedConn,
	// so that it does not count as mochi having read the CONNECT.
	_ = conn.SetDeadline(time.Now().Add(l.b.opts.ConnectTimeout))
	gc := &guardedConn{Conn: conn}
	var c net.Conn = gc
	if l.tls != nil {
		c = tls.Server(gc, l.tls)
	}
	l.mu.Lock()
	if l.closed.Load() {
		l.mu.Unlock()
		l.addrs.Release(key)
		conn.Close()
		return
	}
	l.live[gc] = struct{}{}
	l.serving.Add(1)
	l.mu.Unlock()

	go func() {
		defer l.serving.Done()
		defer l.addrs.Release(key)
		err := establish(l.id, c)
		c.Close() // mochi has closed it already; this is for the paths where it has not
		l.mu.Lock()
		delete(l.live, gc)
		l.mu.Unlock()
		l.b.connectionEnded(conn.RemoteAddr(), gc.sessionStarted(), err)
	}()
}

// Close stops accepting, disconnects the clients mochi knows on this
// listener, then closes every connection still being served: those
// waiting for their CONNECT, which mochi does not know and would otherwise
// keep its Close waiting, and those whose session was still being set up
// when the clients were disconnected. It returns when every establish call
// has returned.
//
// mochi's own CloseFn is not called: its Clients.GetByListener (v2.7.9)
// takes the clients' read lock twice (once itself, once through Len), and
// a connection whose CONNECT is being accepted at that moment waits for
// the write lock between the two, which blocks the second read lock for
// ever: the broker hung at shutdown in CI (mochi-mqtt/server#488, fixes
// #489 and #507 not merged). GetAll takes the lock once.
func (l *guardListener) Close(listeners.CloseFn) {
	if !l.closed.CompareAndSwap(false, true) {
		return
	}
	l.ln.Close()
	l.b.disconnectListenerClients(l.id)
	l.mu.Lock()
	for gc := range l.live {
		gc.Conn.Close()
	}
	l.mu.Unlock()
	l.serving.Wait()
}

// disconnectListenerClients tells each client connected through listener
// id that the server is shutting down and stops it, as mochi's
// closeListenerClients does, with a single read of the clients map.
func (b *Broker) disconnectListenerClients(id string) {
	for _, cl := range b.server.Clients.GetAll() {
		if cl.Net.Listener == id && !cl.Closed() {
			_ = b.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// guardedConn notes when mochi first sets a deadline on the connection,
// which it does right after it has read and validated the CONNECT packet:
// from then on the keepalive governs, and a timeout is no longer a
// half-open connection.
type guardedConn struct {
	net.Conn
	started atomic.Bool
}

func (c *guardedConn) SetDeadline(t time.Time) error {
	c.started.Store(true)
	return c.Conn.SetDeadline(t)
}

func (c *guardedConn) sessionStarted() bool { return c.started.Load() }

// connectionEnded counts and logs why a connection ended, when the reason
// is the client's fault and not already counted elsewhere (refused
// credentials are counted by the auth hook).
func (b *Broker) connectionEnded(remote net.Addr, started bool, err error) {
	if err == nil || b.closing.Load() {
		return
	}
	switch {
	case errors.Is(err, packets.ErrPacketTooLarge):
		b.count.oversized.Add(1)
		b.warn("mqtt connection closed: packet larger than the limit",
			"remote", remote.String(), "limit", b.opts.MaxPacketSize)
	case started && isTimeout(err):
		// Silent for 1.5 keepalives: usually a network that vanished.
		b.count.idleTimeouts.Add(1)
		b.log.Info("mqtt session closed: silent past its keepalive", "remote", remote.String())
	case started:
		// A session (or an attempt refused by auth) ended: mochi and the
		// hooks have said what there is to say.
	case isTimeout(err):
		b.count.connectTimeouts.Add(1)
		b.warn("mqtt connection closed: no CONNECT within the connect timeout",
			"remote", remote.String(), "timeout", b.opts.ConnectTimeout)
	case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
		// Opened and closed without a word: a port probe or a health
		// check. Not worth a warning.
		b.log.Debug("mqtt connection closed before CONNECT", "remote", remote.String())
	default:
		b.count.badConnects.Add(1)
		b.warn("mqtt connection closed: no valid CONNECT", "remote", remote.String(), "error", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
