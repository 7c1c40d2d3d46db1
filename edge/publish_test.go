package edge

import (
	"errors"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/semko/semko/protocol"
)

// doneToken is a paho token that has completed with err.
type doneToken struct {
	err  error
	done chan struct{}
}

func newToken(done bool, err error) *doneToken {
	t := &doneToken{err: err, done: make(chan struct{})}
	if done {
		close(t.done)
	}
	return t
}

func (t *doneToken) Wait() bool                     { <-t.done; return true }
func (t *doneToken) WaitTimeout(time.Duration) bool { return true }
func (t *doneToken) Done() <-chan struct{}          { return t.done }
func (t *doneToken) Error() error                   { return t.err }

// fakeClient only stands for a connection's identity in settle.
type fakeClient struct{ paho.Client }

// TestSettleTrustsTokensOnlyWithinOneEpoch checks the guard against paho
// completing a token with nil error across a reconnect (#563, #613).
func TestSettleTrustsTokensOnlyWithinOneEpoch(t *testing.T) {
	tests := []struct {
		name      string
		tok       *doneToken
		sameConn  bool
		bumpEpoch bool
		age       time.Duration
		wantAcked bool
		wantKept  bool // still in flight
	}{
		{name: "confirmed", tok: newToken(true, nil), sameConn: true, wantAcked: true},
		{name: "nil error across a reconnect", tok: newToken(true, nil), sameConn: true, bumpEpoch: true},
		{name: "other connection", tok: newToken(true, nil)},
		{name: "error", tok: newToken(true, errors.New("lost")), sameConn: true},
		{name: "waiting", tok: newToken(false, nil), sameConn: true, wantKept: true},
		{name: "overdue", tok: newToken(false, nil), sameConn: true, age: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			end, keypad := net.Pipe()
			defer keypad.Close()
			a, err := New(Config{Device: "kp-p", Broker: "tcp://127.0.0.1:1", DataDir: t.TempDir(), PublishTimeout: time.Second}, end)
			if err != nil {
				t.Fatal(err)
			}
			defer a.box.Close()
			seq, err := a.box.Append(protocol.KindVote, func(uint64) ([]byte, error) { return []byte("{}"), nil })
			if err != nil {
				t.Fatal(err)
			}
			cur, old := &fakeClient{}, &fakeClient{}
			sentOn := paho.Client(old)
			if tt.sameConn {
				sentOn = cur
			}
			inflight := map[uint64]flight{seq: {tok: tt.tok, client: sentOn, epoch: a.epoch.Load(), sent: time.Now().Add(-tt.age)}}
			if tt.bumpEpoch {
				a.epoch.Add(2) // lost and reconnected
			}
			a.settle(cur, inflight)
			if acked := a.box.Len() == 0; acked != tt.wantAcked {
				t.Fatalf("acked %v, want %v", acked, tt.wantAcked)
			}
			if _, kept := inflight[seq]; kept != tt.wantKept {
				t.Fatalf("in flight %v, want %v", kept, tt.wantKept)
			}
		})
	}
}
