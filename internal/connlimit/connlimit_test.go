package connlimit

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

func TestKey(t *testing.T) {
	cases := []struct {
		remote net.Addr
		want   string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 50000}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1}, "192.0.2.7"},
		// One IPv6 host commonly holds a whole /64: it counts as one.
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa::1"), Port: 1}, "2001:db8:1:2::"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:bbbb::9"), Port: 2}, "2001:db8:1:2::"},
		{&net.UnixAddr{Name: "@x", Net: "unix"}, "invalid IP"},
	}
	for _, tc := range cases {
		if got := Key(tc.remote).String(); got != tc.want {
			t.Errorf("Key(%v) = %s, want %s", tc.remote, got, tc.want)
		}
	}
}

func TestLimiterHoldsOnlyOpenKeys(t *testing.T) {
	l := New(2)
	a := Key(&net.TCPAddr{IP: net.ParseIP("192.0.2.1")})
	b := Key(&net.TCPAddr{IP: net.ParseIP("192.0.2.2")})
	for i := range 2 {
		if !l.Acquire(a) {
			t.Fatalf("slot %d of 2 refused", i+1)
		}
	}
	if l.Acquire(a) {
		t.Fatal("a third slot was granted")
	}
	if !l.Acquire(b) {
		t.Fatal("another address was refused")
	}
	l.Release(a)
	if !l.Acquire(a) {
		t.Fatal("a released slot was not granted again")
	}
	l.Release(a)
	l.Release(a)
	l.Release(b)
	if n := len(l.open); n != 0 {
		t.Errorf("%d keys held with nothing open", n)
	}
	if !New(0).Acquire(a) {
		t.Error("no limit refused a connection")
	}
}

// TestListenRefusesPastTheLimit dials a real loopback listener from two
// addresses: the one over its limit is closed at once and reported, the
// other is not affected, and a closed connection frees its slot.
func TestListenRefusesPastTheLimit(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int64
	ln := Listen(raw, New(2), func(net.Addr) { refused.Add(1) })
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func(from string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	next := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("nothing accepted")
			return nil
		}
	}

	dial("127.0.0.1")
	first := next()
	dial("127.0.0.1")
	next()
	over := dial("127.0.0.1")
	_ = over.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := over.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("the connection over the limit: read %v, want it closed", err)
	}
	if n := refused.Load(); n != 1 {
		t.Fatalf("refused reported %d times, want 1", n)
	}
	dial("127.0.0.4") // another address has its own slots
	next()

	first.Close()
	first.Close() // a second Close must not free a second slot
	dial("127.0.0.1")
	next()
	over = dial("127.0.0.1")
	_ = over.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := over.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("after a double Close: read %v, want the connection over the limit closed", err)
	}
	if n := refused.Load(); n != 2 {
		t.Fatalf("refused reported %d times, want 2", n)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}
