package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/semko/semko/internal/testwait"
	"github.com/semko/semko/protocol"
)

func TestAuthentication(t *testing.T) {
	b := startBroker(t, Options{})
	tests := []struct {
		name, clientID, user, secret string
		ok                           bool
	}{
		{"device", dev1, dev1, dev1Secret, true},
		{"backend with bcrypt password", "backend-1", backendUser, backendPass, true},
		{"observer", "app-1", observerUser, observerPw, true},
		{"wrong secret", dev1, dev1, dev2Secret, false},
		{"unknown user", "kp-9999", "kp-9999", dev1Secret, false},
		{"anonymous", "kp-0001", "", "", false},
		{"device client id differs", "kp-0002", dev1, dev1Secret, false},
		{"backend using a device's client id", dev2, backendUser, backendPass, false},
		{"empty secret", dev1, dev1, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.Stats().AuthFailures
			c, err := connect(t, b.Addr(), tt.clientID, tt.user, tt.secret)
			if tt.ok != (err == nil) {
				t.Fatalf("connect error %v, want ok=%v", err, tt.ok)
			}
			if c != nil {
				c.Disconnect(0)
			}
			if got := b.Stats().AuthFailures - before; !tt.ok && got != 1 {
				t.Errorf("AuthFailures grew by %d, want 1", got)
			}
		})
	}
}

func TestDevicePublishesOwnVote(t *testing.T) {
	in := newRecordingIntake()
	b := startBroker(t, Options{Intake: in})
	dev := mustConnect(t, b.Addr(), dev1, dev1, dev1Secret)

	payload := votePayload(t, dev1, 1)
	mustPublish(t, dev, protocol.DeviceTopic(dev1, protocol.KindVote), payload)
	m := in.next(t)
	if m.Topic != (protocol.Topic{Device: dev1, Kind: protocol.KindVote}) || !bytes.Equal(m.Payload, payload) || m.ClientID != dev1 {
		t.Fatalf("intake got %+v, payload %q", m, m.Payload)
	}
	if m.Received.IsZero() {
		t.Error("Received not set")
	}
	if s := b.Stats(); s.IntakeAccepted != 1 || s.MessagesIn != 1 {
		t.Errorf("stats %+v", s)
	}

	// Only kinds retained by contract may be retained. (Retained also
	// counts mochi's own $SYS entries, hence the deltas.)
	retained := b.Stats().Retained
	if tok := dev.Publish(protocol.DeviceTopic(dev1, protocol.KindVote), 1, true, votePayload(t, dev1, 2)); !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	in.next(t)
	if got := b.Stats().Retained - retained; got != 0 {
		t.Errorf("retained vote kept: Retained = %d", got)
	}
	birth, _ := protocol.Encode(protocol.SampleStatus())
	if tok := dev.Publish(protocol.DeviceTopic(dev1, protocol.KindStatus), 1, true, birth); !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	in.next(t)
	if got := b.Stats().Retained - retained; got != 1 {
		t.Errorf("retained status: Retained = %d, want 1", got)
	}
}

func TestDeviceACL(t *testing.T) {
	in := newRecordingIntake()
	b := startBroker(t, Options{Intake: in})
	dev := mustConnect(t, b.Addr(), dev1, dev1, dev1Secret)

	// A QoS 1 publish on another device's topic: mochi answers a 3.1.1
	// client by disconnecting it.
	publish(t, dev, protocol.DeviceTopic(dev2, protocol.KindVote), votePayload(t, dev2, 1), waitShort)
	select {
	case <-dev.lost:
	case <-t.Context().Done():
	}
	if b.Stats().ACLDenied == 0 {
		t.Error("ACLDenied not counted")
	}
	// Barrier: the next message Intake sees is dev2's own vote, so the
	// denied one never reached it.
	other := mustConnect(t, b.Addr(), dev2, dev2, dev2Secret)
	mustPublish(t, other, protocol.DeviceTopic(dev2, protocol.KindVote), votePayload(t, dev2, 7))
	if m := in.next(t); m.ClientID != dev2 {
		t.Fatalf("intake saw %+v from the denied publish", m)
	}

	subs := []struct {
		filter string
		ok     bool
	}{
		{protocol.DeviceTopic(dev1, protocol.KindCommand), false},
		{protocol.DeviceTopic(dev1, protocol.KindConfig), false},
		{protocol.Root + "/devices/" + dev2 + "/#", false},
		{protocol.Root + "/devices/+/cmd", false},
		{"#", false},
		{protocol.DeviceTopic(dev2, protocol.KindVote), false},
		{"$share/g/" + protocol.DeviceTopic(dev2, protocol.KindCommand), false},
		{protocol.DeviceTopic(dev2, protocol.KindCommand), true},
		{protocol.DeviceTopic(dev2, protocol.KindActivate), true},
		{protocol.DeviceTopic(dev2, protocol.KindConfig), true},
	}
	for _, s := range subs {
		code, _ := subscribe(t, other, s.filter)
		if got := code != 0x80; got != s.ok {
			t.Errorf("device subscribe %q: code %#x, want allowed=%v", s.filter, code, s.ok)
		}
	}
}

func TestRetainedConfigReachesDevice(t *testing.T) {
	b := startBroker(t, Options{})
	cfg, err := protocol.Encode(protocol.SampleConfig())
	if err != nil {
		t.Fatal(err)
	}
	topic := protocol.DeviceTopic(dev1, protocol.KindConfig)
	if err := b.Publish(topic, cfg, true, 1); err != nil {
		t.Fatal(err)
	}
	dev := mustConnect(t, b.Addr(), dev1, dev1, dev1Secret)
	code, ch := subscribe(t, dev, topic)
	if code != 1 {
		t.Fatalf("subscribe own config: code %#x", code)
	}
	if m := receive(t, ch); !bytes.Equal(m.Payload(), cfg) || !m.Retained() {
		t.Fatalf("got %q retained=%v", m.Payload(), m.Retained())
	}
}

func TestPublishRefusesTopicsOutsideRoot(t *testing.T) {
	b := startBroker(t, Options{})
	for _, topic := range []string{"other/x", "$SYS/x", protocol.Root + "/devices/+/config", ""} {
		if err := b.Publish(topic, nil, false, 1); !errors.Is(err, ErrTopic) {
			t.Errorf("Publish(%q) = %v, want ErrTopic", topic, err)
		}
	}
}

func TestIntakePermanentErrorAcknowledgesAndDiscards(t *testing.T) {
	in := newRecordingIntake()
	in.failWith(func(m Message) error {
		_, err := protocol.Decode[protocol.Vote](m.Payload)
		return err
	})
	b := startBroker(t, Options{Intake: in})
	backend := mustConnect(t, b.Addr(), "backend-1", backendUser, backendPass)
	_, ch := subscribe(t, backend, protocol.Root+"/#")
	dev := mustConnect(t, b.Addr(), dev1, dev1, dev1Secret)

	topic := protocol.DeviceTopic(dev1, protocol.KindVote)
	mustPublish(t, dev, topic, []byte(`{"v":1,"score":99}`)) // PUBACK although bad
	good := votePayload(t, dev1, 2)
	mustPublish(t, dev, topic, good)

	if m := receive(t, ch); !bytes.Equal(m.Payload(), good) {
		t.Fatalf("backend received %q first, want only the good vote", m.Payload())
	}
	if got := b.Stats().RejectedInvalid[reasonInvalid]; got != 1 {
		t.Errorf("RejectedInvalid[invalid] = %d, want 1", got)
	}
}

func TestIntakeTransientErrorWithholdsPuback(t *testing.T) {
	in := newRecordingIntake()
	down := errors.New("spool unavailable")
	in.failWith(func(Message) error { return down })
	b := startBroker(t, Options{Intake: in})
	dev := mustConnect(t, b.Addr(), dev1, dev1, dev1Secret, withReconnect)

	payload := votePayload(t, dev1, 3)
	acked, tok := publish(t, dev, protocol.DeviceTopic(dev1, protocol.KindVote), payload, waitShort)
	if acked {
		t.Fatal("PUBACK although intake failed")
	}
	testwait.For(t, "IntakeRetries", func() bool { return b.Stats().IntakeRetries >= 1 })

	// Intake recovers; an MQTT 3.1.1 client resends unacknowledged messages
	// when it reconnects, so drop the connection underneath it.
	in.failWith(func(Message) error { return nil })
	dev.cut()
	if !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatalf("resend not acknowledged: %v", tok.Error())
	}
	if m := in.next(t); !bytes.Equal(m.Payload, payload) {
		t.Fatalf("intake got %q", m.Payload)
	}
}

func TestRetainedConfigSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	creds := testCredentials(t)
	cfg, err := protocol.Encode(protocol.SampleConfig())
	if err != nil {
		t.Fatal(err)
	}
	topic := protocol.DeviceTopic(dev1, protocol.KindConfig)

	first := startBroker(t, Options{DataDir: dir, Credentials: creds})
	if err := first.Publish(topic, cfg, true, 1); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil { // idempotent
		t.Fatal(err)
	}

	second := startBroker(t, Options{DataDir: dir, Credentials: creds})
	dev := mustConnect(t, second.Addr(), dev1, dev1, dev1Secret)
	_, ch := subscribe(t, dev, topic)
	if m := receive(t, ch); !bytes.Equal(m.Payload(), cfg) {
		t.Fatalf("after restart got %q", m.Payload())
	}
}

func TestWillReachesIntakeOnAbruptDisconnect(t *testing.T) {
	in := newRecordingIntake()
	b := startBroker(t, Options{Intake: in})
	backend := mustConnect(t, b.Addr(), "backend-1", backendUser, backendPass)
	_, ch := subscribe(t, backend, protocol.UpstreamFilter(protocol.KindStatus))

	statusTopic := protocol.DeviceTopic(dev1, protocol.KindStatus)
	death := deathPayload(t, dev1)
	dev := mustConnect(t, b.Addr(), dev1, dev1, dev1Secret, withWill(statusTopic, death))
	dev.cut()

	m := in.next(t)
	if m.Topic.String() != statusTopic || !bytes.Equal(m.Payload, death) {
		t.Fatalf("intake got %s %q", m.Topic, m.Payload)
	}
	if got := receive(t, ch); !bytes.Equal(got.Payload(), death) {
		t.Fatalf("backend got %q", got.Payload())
	}
}

func TestWillOnForeignTopicRefused(t *testing.T) {
	b := startBroker(t, Options{})
	_, err := connect(t, b.Addr(), dev1, dev1, dev1Secret,
		withWill(protocol.DeviceTopic(dev2, protocol.KindStatus), deathPayload(t, dev2)))
	if err == nil {
		t.Fatal("connected with a will on another device's topic")
	}
	if b.Stats().ACLDenied != 1 {
		t.Errorf("ACLDenied = %d", b.Stats().ACLDenied)
	}
}

func TestRateLimitIsPerClient(t *testing.T) {
	in := newRecordingIntake()
	b := startBroker(t, Options{Intake: in, PublishRate: 0.001, PublishBurst: 3})
	noisy := mustConnect(t, b.Addr(), dev1, dev1, dev1Secret)
	quiet := mustConnect(t, b.Addr(), dev2, dev2, dev2Secret)
	topic := protocol.DeviceTopic(dev1, protocol.KindVote)

	for seq := uint64(1); seq <= 3; seq++ {
		mustPublish(t, noisy, topic, votePayload(t, dev1, seq))
	}
	if acked, _ := publish(t, noisy, topic, votePayload(t, dev1, 4), waitShort); acked {
		t.Fatal("publish over the limit acknowledged")
	}
	mustPublish(t, quiet, protocol.DeviceTopic(dev2, protocol.KindVote), votePayload(t, dev2, 1))
	if got := b.Stats().RateLimited; got != 1 {
		t.Errorf("RateLimited = %d, want 1", got)
	}
}

func TestOversizePacketRefused(t *testing.T) {
	in := newRecordingIntake()
	b := startBroker(t, Options{Intake: in, MaxPacketSize: 4 << 10})
	dev := mustConnect(t, b.Addr(), dev1, dev1, dev1Secret)
	big := []byte(`{"pad":"` + strings.Repeat("x", 5<<10) + `"}`)
	if acked, _ := publish(t, dev, protocol.DeviceTopic(dev1, protocol.KindVote), big, waitShort); acked {
		t.Fatal("oversize publish acknowledged")
	}
	select {
	case <-dev.lost:
	case <-t.Context().Done():
	}
	other := mustConnect(t, b.Addr(), dev2, dev2, dev2Secret)
	mustPublish(t, other, protocol.DeviceTopic(dev2, protocol.KindVote), votePayload(t, dev2, 1))
	if m := in.next(t); m.ClientID != dev2 {
		t.Fatalf("intake saw the oversize message: %s", m.ClientID)
	}
}

func TestObserverAndBackendRights(t *testing.T) {
	b := startBroker(t, Options{})
	obs := mustConnect(t, b.Addr(), "app-1", observerUser, observerPw)
	backend := mustConnect(t, b.Addr(), "backend-1", backendUser, backendPass)
	for _, tt := range []struct {
		who    *client
		filter string
		ok     bool
	}{
		{obs, protocol.AlertFilter("", ""), true},
		{obs, protocol.Root + "/#", false},
		{obs, "$share/apps/" + protocol.Root + "/alerts/#", false},
		{obs, "#", false},
		{obs, "$SYS/#", false},
		{backend, "$share/semko/" + protocol.UpstreamFilter(protocol.KindVote), true},
		{backend, "#", false},
	} {
		if code, _ := subscribe(t, tt.who, tt.filter); (code != 0x80) != tt.ok {
			t.Errorf("subscribe %q: code %#x, want allowed=%v", tt.filter, code, tt.ok)
		}
	}
	// Backend publishes downstream and a device receives it.
	dev := mustConnect(t, b.Addr(), dev1, dev1, dev1Secret)
	cmdTopic := protocol.DeviceTopic(dev1, protocol.KindCommand)
	_, ch := subscribe(t, dev, cmdTopic)
	mustPublish(t, backend, cmdTopic, []byte("cmd"))
	receive(t, ch)
	// The observer may not publish: mochi disconnects a 3.1.1 client on a
	// denied QoS 1 publish.
	publish(t, obs, cmdTopic, []byte("x"), waitShort)
	select {
	case <-obs.lost:
	case <-t.Context().Done():
	}
}

func TestPresence(t *testing.T) {
	type event struct {
		id     string
		online bool
	}
	events := make(chan event, 10)
	b, err := New(Options{TCPAddr: "127.0.0.1:0", Credentials: testCredentials(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	b.OnPresence(func(id string, online bool) { events <- event{id, online} })
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	next := func() event {
		select {
		case e := <-events:
			return e
		case <-t.Context().Done():
			t.Fatal("no presence event")
			return event{}
		}
	}

	mustConnect(t, b.Addr(), "backend-1", backendUser, backendPass) // not a device: no event
	first := mustConnect(t, b.Addr(), dev1, dev1, dev1Secret)
	if e := next(); e != (event{dev1, true}) {
		t.Fatalf("got %+v", e)
	}
	second := mustConnect(t, b.Addr(), dev1, dev1, dev1Secret) // takes the session over
	if e := next(); e != (event{dev1, true}) {
		t.Fatalf("after takeover got %+v", e)
	}
	select {
	case <-first.lost:
	case <-t.Context().Done():
	}
	second.Disconnect(0)
	if e := next(); e != (event{dev1, false}) {
		t.Fatalf("after disconnect got %+v, want offline (and no offline for the taken-over one)", e)
	}
	// mochi counts the client gone after the hooks have run.
	testwait.For(t, "ClientsConnected = 1", func() bool { return b.Stats().ClientsConnected == 1 })
}

// TestTakeoversNeverReportOffline takes a device's session over many
// times in a row. mochi closes the old connection before it marks it taken
// over, so without presenceHook.OnSessionEstablish some of these old
// connections reported the device offline while its new one was coming up.
func TestTakeoversNeverReportOffline(t *testing.T) {
	offline := make(chan string, 100)
	b, err := New(Options{TCPAddr: "127.0.0.1:0", Credentials: testCredentials(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	b.OnPresence(func(id string, online bool) {
		if !online {
			offline <- id
		}
	})
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })

	const takeovers = 30
	clients := []*client{mustConnect(t, b.Addr(), dev1, dev1, dev1Secret)}
	for range takeovers {
		clients = append(clients, mustConnect(t, b.Addr(), dev1, dev1, dev1Secret))
	}
	clients[takeovers].Disconnect(0)
	// mochi counts a connection gone after its hooks have run: at zero,
	// every presence report is in.
	testwait.For(t, "ClientsConnected = 0", func() bool { return b.Stats().ClientsConnected == 0 })
	if n := len(offline); n != 1 {
		t.Fatalf("%d offline reports for one device that went offline once", n)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	creds := testCredentials(t)
	for _, o := range []Options{
		{TCPAddr: "127.0.0.1:0"},
		{Credentials: creds},
		{Credentials: creds, TLSAddr: "127.0.0.1:0"},
	} {
		if _, err := New(o); !errors.Is(err, ErrOptions) {
			t.Errorf("New(%+v) = %v, want ErrOptions", o, err)
		}
	}
}

func ExampleHashSecret() {
	hash, _ := HashSecret("a-random-device-token")
	fmt.Println(strings.HasPrefix(hash, "sha256$"), VerifySecret(hash, "a-random-device-token"), VerifySecret(hash, "guess"))
	// Output: true true false
}

func TestCloseEndsBlockedIntakeAndSuppressesWills(t *testing.T) {
	entered := make(chan Message, 10)
	intake := IntakeFunc(func(ctx context.Context, m Message) error {
		entered <- m
		<-ctx.Done() // a stuck spool
		return ctx.Err()
	})
	b := startBroker(t, Options{Intake: intake})
	statusTopic := protocol.DeviceTopic(dev1, protocol.KindStatus)
	dev := mustConnect(t, b.Addr(), dev1, dev1, dev1Secret, withWill(statusTopic, deathPayload(t, dev1)))
	tok := dev.Publish(protocol.DeviceTopic(dev1, protocol.KindVote), 1, false, votePayload(t, dev1, 1))
	select {
	case <-entered:
	case <-time.After(waitLong):
		t.Fatal("intake not called")
	}

	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLong):
		t.Fatal("Close blocked on a stuck intake")
	}
	if tok.WaitTimeout(waitShort) && tok.Error() == nil {
		t.Error("the vote was acknowledged although intake never took it")
	}
	select {
	case m := <-entered:
		t.Fatalf("intake called after Close began: %s", m.Topic)
	default:
	}
	if err := b.Publish(protocol.DeviceTopic(dev1, protocol.KindConfig), nil, true, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close = %v", err)
	}
	if err := b.Start(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v", err)
	}
}

// A device a little over its rate (an edge draining a backlog) is slowed
// down, not refused: every publish is acknowledged, at the allowed pace.
func TestRateLimitSlowsBeforeRefusing(t *testing.T) {
	in := newRecordingIntake()
	b := startBroker(t, Options{Intake: in, PublishRate: 20, PublishBurst: 5})
	dev := mustConnect(t, b.Addr(), dev1, dev1, dev1Secret)
	topic := protocol.DeviceTopic(dev1, protocol.KindVote)
	start := time.Now()
	for seq := uint64(1); seq <= 15; seq++ {
		mustPublish(t, dev, topic, votePayload(t, dev1, seq))
	}
	// 5 from the burst, 10 more at 20/s: at least about half a second.
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Errorf("15 publishes took %v: the limit did not pace them", took)
	}
	if got := b.Stats().RateLimited; got != 0 {
		t.Errorf("RateLimited = %d, want 0: a small excess is slowed, not refused", got)
	}
}
