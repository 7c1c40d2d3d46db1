package edge

import (
	"net"
	"slices"
	"testing"

	"github.com/semko/semko/internal/testwait"
)

func TestBrokerOrder(t *testing.T) {
	if got := brokerOrder("kp-1", "tcp://a:1883", 7); !slices.Equal(got, []string{"tcp://a:1883"}) {
		t.Errorf("one broker: %v", got)
	}
	if got := brokerList(" tcp://a:1 , ,tcp://b:2,"); !slices.Equal(got, []string{"tcp://a:1", "tcp://b:2"}) {
		t.Errorf("brokerList: %v", got)
	}
	const three = "tcp://a:1,tcp://b:2,tcp://c:3"
	first := map[string]int{}
	for i := range 300 {
		dev := "kp-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		o := brokerOrder(dev, three, 0)
		if len(o) != 3 || !slices.Contains(o, "tcp://a:1") || !slices.Contains(o, "tcp://b:2") || !slices.Contains(o, "tcp://c:3") {
			t.Fatalf("%s: %v is not a rotation of all three", dev, o)
		}
		first[o[0]]++
		// The next attempt starts one node further.
		if next := brokerOrder(dev, three, 1); next[0] != o[1] {
			t.Fatalf("%s: attempt 1 starts at %s, want %s", dev, next[0], o[1])
		}
	}
	for u, n := range first {
		if n < 60 {
			t.Errorf("only %d of 300 devices start at %s: %v", n, u, first)
		}
	}
}

// TestAgentFailsOver: with two brokers listed and the first gone, the
// agent connects to the second and delivers a vote there.
func TestAgentFailsOver(t *testing.T) {
	rec := &recorder{}
	b := startBroker(t, "127.0.0.1:0", rec)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "tcp://" + l.Addr().String()
	l.Close() // nobody listens there now: connections are refused
	// List them so that the first attempt of kp-0001 starts with the dead one.
	list := dead + "," + b.url()
	if brokerOrder("kp-0001", list, 0)[0] != dead {
		list = b.url() + "," + dead
	}
	a := startAgent(t, Config{Device: "kp-0001", Broker: list, DataDir: t.TempDir()})
	testwait.For(t, "agent connected through the second broker", func() bool { return a.Stats().Connected })
}
