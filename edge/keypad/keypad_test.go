package keypad

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/semko/semko/protocol"
)

func TestDialTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write(protocol.KeyPress{Key: 3, Seq: 1, Clock: time.UnixMilli(1)}.Frame().Bytes())
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kp, err := DialTCP(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer kp.Close()
	f, err := protocol.NewFrameReader(kp).ReadFrame()
	if err != nil || f.Type != protocol.FrameKey {
		t.Fatalf("frame %v err %v", f, err)
	}
}

func TestOpenSerialMissing(t *testing.T) {
	if _, err := OpenSerial("/dev/semko-no-such-port", 0); err == nil {
		t.Fatal("want error for a missing port")
	}
}
