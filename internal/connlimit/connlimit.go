// Package connlimit bounds the connections one remote address may hold
// open, so that one host cannot use up a server's memory and file
// descriptors. The broker uses the Limiter in its MQTT listeners; the
// backend wraps its HTTP listener with Listen.
package connlimit

import (
	"net"
	"net/netip"
	"sync"
)

// Key is the unit the limit counts: the IPv4 address, or the /64 of an
// IPv6 address (one host commonly holds a whole /64). Addresses that are
// not IP (pipes in tests) share one key.
func Key(a net.Addr) netip.Addr {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// Limiter counts open connections per key. It holds an entry only for keys
// with connections open, so its size is bounded by them. Safe for
// concurrent use.
type Limiter struct {
	limit int // <= 0: no limit
	mu    sync.Mutex
	open  map[netip.Addr]int
}

// New returns a Limiter allowing limit connections per key; limit <= 0
// allows any number (but still counts them).
func New(limit int) *Limiter {
	return &Limiter{limit: limit, open: make(map[netip.Addr]int)}
}

// Acquire takes a connection slot for k and reports whether one was free.
// Each successful Acquire must be followed by one Release.
func (l *Limiter) Acquire(k netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.limit > 0 && l.open[k] >= l.limit {
		return false
	}
	l.open[k]++
	return true
}

// Release gives back a slot taken by Acquire.
func (l *Limiter) Release(k netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[k] <= 1 {
		delete(l.open, k)
		return
	}
	l.open[k]--
}

// Listen wraps ln so that Accept closes, at once, every connection whose
// address already holds the limit, and calls refused with its remote
// address (to count and log it; it must return quickly). An accepted
// connection gives its slot back when it is closed.
func Listen(ln net.Listener, l *Limiter, refused func(remote net.Addr)) net.Listener {
	return &listener{Listener: ln, lim: l, refused: refused}
}

type listener struct {
	net.Listener
	lim     *Limiter
	refused func(net.Addr)
}

func (ln *listener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		k := Key(c.RemoteAddr())
		if ln.lim.Acquire(k) {
			return &conn{Conn: c, release: func() { ln.lim.Release(k) }}, nil
		}
		// Reported before the close, so that whoever sees the connection
		// closed also finds it counted.
		if ln.refused != nil {
			ln.refused(c.RemoteAddr())
		}
		c.Close()
	}
}

// conn releases its slot on the first Close.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
