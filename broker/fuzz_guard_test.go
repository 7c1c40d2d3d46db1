package broker

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/semko/semko/protocol"
)

// FuzzClientBytes sends arbitrary bytes to the broker as a client would,
// before and after a valid CONNECT: whatever a hostile client sends, the
// broker must not panic (a panic on a connection goroutine would take the
// whole broker down) and must end or keep serving the connection.
func FuzzClientBytes(f *testing.F) {
	connect := connectPacket(f, dev1, dev1, dev1Secret)
	publish := func(topic string, payload []byte, qos byte) []byte {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: topic, Payload: payload}
		if qos > 0 {
			pk.PacketID = 7
		}
		var buf bytes.Buffer
		if err := pk.PublishEncode(&buf); err != nil {
			f.Fatal(err)
		}
		return buf.Bytes()
	}
	vote := protocol.DeviceTopic(dev1, protocol.KindVote)
	f.Add(false, []byte{})
	f.Add(false, connect)
	f.Add(false, []byte{0x10, 0xff, 0xff, 0xff, 0x7f})
	f.Add(false, []byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add(true, publish(vote, votePayload(f, dev1, 1), 1))
	f.Add(true, publish(vote, []byte(`{"v":1`), 0))
	f.Add(true, publish("$SYS/x", nil, 2))
	f.Add(true, []byte{0x82, 0x08, 0x00, 0x01, 0x00, 0x03, '#', '/', '+', 0x01})
	f.Add(true, append(connect, 0xc0, 0x00, 0xe0, 0x00))

	in := newRecordingIntake()
	b, err := New(Options{TCPAddr: "127.0.0.1:0", Credentials: testCredentials(f), Intake: in, ConnectTimeout: time.Second})
	if err != nil {
		f.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	stop := make(chan struct{})
	f.Cleanup(func() { close(stop) })
	go func() { // keep the intake from filling up
		for {
			select {
			case <-in.got:
			case <-stop:
				return
			}
		}
	}()

	f.Fuzz(func(t *testing.T, afterConnect bool, data []byte) {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = b.server.EstablishConnection("fuzz", server)
		}()
		go io.Copy(io.Discard, client) // the broker's answers
		_ = client.SetWriteDeadline(time.Now().Add(time.Second))
		if afterConnect {
			if _, err := client.Write(connect); err != nil {
				client.Close()
				<-done
				return
			}
		}
		_, _ = client.Write(data)
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("connection not ended 10 s after the client closed it")
		}
	})
}
