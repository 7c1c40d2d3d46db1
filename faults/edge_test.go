package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/semko/semko/edge"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/firmware-sim/keypad"
	"github.com/semko/semko/internal/testwait"
	"github.com/semko/semko/protocol"
)

// edgeUnit is one counter: semko-edge as a child process (so a test can
// SIGKILL it) and its simulated keypad in the test process, joined over
// TCP the way a serial-to-Ethernet bridge would join them. It counts what
// the keypad saw taken: that is what InfluxDB must hold.
type edgeUnit struct {
	t          *testing.T
	dev        fleet.Device
	dir        string
	brokerURL  string
	httpAddr   string
	kpListener net.Listener

	p        *proc
	kp       *keypad.Keypad
	kpCancel context.CancelFunc
	kpDone   chan struct{}

	want  fleet.Counts // activations opened, valid votes taken
	nActs int          // activation ids used, for unique ids
}

// windowS is the vote window each activation asks for: long enough that a
// press right after the activation is inside it on a busy machine.
const windowS = 30

func newEdgeUnit(t *testing.T, dev fleet.Device, brokerURL string) *edgeUnit {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	e := &edgeUnit{t: t, dev: dev, dir: t.TempDir(), brokerURL: brokerURL, httpAddr: freeAddr(t), kpListener: ln}
	t.Cleanup(func() {
		if t.Failed() && e.p != nil {
			t.Logf("tail of %s's edge log:\n%s", dev.ID, e.p.tail(20))
		}
	})
	return e
}

// start runs semko-edge, gives it a freshly booted keypad and waits for its
// local API.
func (e *edgeUnit) start() {
	e.t.Helper()
	e.p = startProc(e.t, "semko-edge "+e.dev.ID, filepath.Join(e.dir, "edge.log"),
		[]string{"SEMKO_DEVICE_SECRET=" + e.dev.Secret}, bin.edge,
		"-device", e.dev.ID, "-broker", e.brokerURL, "-data", filepath.Join(e.dir, "data"),
		"-http", e.httpAddr, "-keypad-tcp", e.kpListener.Addr().String(), "-log-level", "debug")

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := e.kpListener.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	var conn net.Conn
	select {
	case conn = <-accepted:
	case <-e.p.done:
		e.t.Fatalf("semko-edge %s exited before dialling its keypad: %v\n%s", e.dev.ID, e.p.err, e.p.tail(20))
	case <-time.After(20 * time.Second):
		e.t.Fatalf("semko-edge %s did not dial its keypad in 20 s", e.dev.ID)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.kp = keypad.New(conn, keypad.Options{FW: e.dev.FW, Serial: e.dev.Serial, Model: e.dev.Model})
	e.kpCancel, e.kpDone = cancel, make(chan struct{})
	go func() {
		defer close(e.kpDone)
		_ = e.kp.Run(ctx) // ends with an error when the edge dies: expected
	}()
	e.t.Cleanup(e.stopKeypad)
	testwait.Within(e.t, 20*time.Second, "edge "+e.dev.ID+" local API did not answer", func() bool {
		_, err := e.stats()
		return err == nil
	})
}

func (e *edgeUnit) stopKeypad() {
	if e.kpCancel != nil {
		e.kpCancel()
		<-e.kpDone
	}
}

// kill is the fault: SIGKILL the edge process. Its keypad loses the line.
func (e *edgeUnit) kill() {
	e.p.kill()
	e.stopKeypad()
}

// vote serves one customer: an activation and, if key is 1..5, a press
// inside its window. It counts only what the edge confirmed: the
// activation's 202 (stored) and the press's TAKEN (stored with fsync).
func (e *edgeUnit) vote(ctx context.Context, key int) error {
	if err := e.activate(ctx); err != nil {
		return err
	}
	if key == 0 {
		return nil
	}
	return e.press(ctx, key)
}

func (e *edgeUnit) activate(ctx context.Context) error {
	e.nActs++
	act := protocol.Activate{
		V: protocol.Version, ID: fmt.Sprintf("%s-a%d-%d", e.dev.ID, e.nActs, time.Now().UnixNano()%1e6),
		WindowS: windowS,
	}
	body, _ := json.Marshal(act)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+e.httpAddr+"/activate", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("activate %s: %w", e.dev.ID, err)
	}
	resp.Body.Close()
	// 502: the window is open and stored, only the keypad missed ARM.
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusBadGateway {
		return fmt.Errorf("activate %s: HTTP %d", e.dev.ID, resp.StatusCode)
	}
	e.want.Activations++
	return nil
}

func (e *edgeUnit) press(ctx context.Context, key int) error {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.kp.Press(pctx, key); err != nil {
		return fmt.Errorf("press %d on %s: %w", key, e.dev.ID, err)
	}
	e.want.Votes++
	e.want.Scores[key-1]++
	return nil
}

// stats reads the agent's counters from its local API.
func (e *edgeUnit) stats() (edge.Stats, error) {
	var st edge.Stats
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + e.httpAddr + "/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status: HTTP %d", resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// outbox is the number of entries the broker has not confirmed yet.
func (e *edgeUnit) outbox() int {
	e.t.Helper()
	st, err := e.stats()
	if err != nil {
		e.t.Fatalf("edge %s status: %v", e.dev.ID, err)
	}
	return st.Outbox
}

// connected reports whether the agent has a session with the broker.
func (e *edgeUnit) connected() bool {
	st, err := e.stats()
	return err == nil && st.Connected
}

// waitDrained waits until the edge's outbox is empty.
func (e *edgeUnit) waitDrained(timeout time.Duration) time.Duration {
	e.t.Helper()
	return testwait.Within(e.t, timeout, "edge "+e.dev.ID+": outbox not drained", func() bool {
		return e.outbox() == 0
	})
}
