// Package keypad opens the serial line of a Semko keypad: a real port, or a
// keypad (or simulator) exposed over TCP. The frames on it are decoded by
// protocol.FrameReader; this package only provides the byte stream.
package keypad

import (
	"context"
	"fmt"
	"io"
	"net"

	"go.bug.st/serial"
)

// DefaultBaud is the keypad's line speed.
const DefaultBaud = 9600

// OpenSerial opens a serial port at 8N1. baud <= 0 means DefaultBaud.
func OpenSerial(path string, baud int) (io.ReadWriteCloser, error) {
	if baud <= 0 {
		baud = DefaultBaud
	}
	p, err := serial.Open(path, &serial.Mode{
		BaudRate: baud,
		DataBits: 8,
		Parity:   serial.NoParity,
		StopBits: serial.OneStopBit,
	})
	if err != nil {
		return nil, fmt.Errorf("open serial %s: %w", path, err)
	}
	return p, nil
}

// DialTCP connects to a keypad exposed over TCP (a serial-to-Ethernet
// bridge or the simulator). The returned net.Conn honours write deadlines,
// which the agent uses so a stuck line cannot block it.
func DialTCP(ctx context.Context, addr string) (io.ReadWriteCloser, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial keypad %s: %w", addr, err)
	}
	return c, nil
}
