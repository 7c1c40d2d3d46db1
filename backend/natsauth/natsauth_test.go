package natsauth_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/natsauth"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/internal/natslocal"
	"github.com/semko/semko/internal/testwait"
	"github.com/semko/semko/protocol"
)

const backendUser, backendPass = "semko-backend", "backend-pass"

type fixture struct {
	c     *natslocal.Cluster
	creds *broker.Credentials
	nc    *nats.Conn
	reg   *prometheus.Registry
	svc   *natsauth.Service
}

func cred(t *testing.T, user, secret string, role broker.Role) broker.Credential {
	t.Helper()
	h, err := broker.HashSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	return broker.Credential{Username: user, Hash: h, Role: role}
}

// start runs a three-node cluster whose auth callout is a Service over
// creds, served through node 1.
func start(t *testing.T, list []broker.Credential) *fixture {
	t.Helper()
	issuer, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := issuer.PublicKey()
	c := natslocal.StartForTest(t, natslocal.Options{Auth: &natslocal.Auth{
		User: backendUser, Password: backendPass, CalloutIssuer: pub}})
	creds, err := broker.NewCredentials(list)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(c.ClientURLs(), nats.UserInfo(backendUser, backendPass))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	reg := prometheus.NewRegistry()
	svc, err := natsauth.New(natsauth.Options{Conn: nc, Issuer: issuer, Credentials: creds, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ctx, stop := contextWithCancel(t)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	// Run subscribes asynchronously; a flush makes the subscription known
	// before the first CONNECT.
	testwait.Within(t, 10*time.Second, "callout subscription", func() bool { return nc.NumSubscriptions() == 1 })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &fixture{c: c, creds: creds, nc: nc, reg: reg, svc: svc}
}

// dial connects over MQTT to node i and returns the CONNACK error.
func (f *fixture) dial(i int, clientID, user, secret string) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker(f.c.Nodes[i].MQTTURL()).SetClientID(clientID).
		SetUsername(user).SetPassword(secret).SetProtocolVersion(4).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
	cl := paho.NewClient(o)
	tok := cl.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return cl, nil
}

func (f *fixture) refusals(t *testing.T, reason string) float64 {
	return requests(t, f.reg, reason)
}

// TestDevicesByRegistry: the cluster admits devices by the registry's
// salted hashes, binds client id to username, confines each device to its
// own topics, and follows a rotation and a retirement without a restart.
func TestDevicesByRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node NATS cluster")
	}
	f := start(t, []broker.Credential{
		cred(t, "kp-1", "s1", broker.RoleDevice), cred(t, "kp-2", "s2", broker.RoleDevice),
		cred(t, "kp.3", "s3", broker.RoleDevice), cred(t, "tech", "app", broker.RoleObserver),
	})

	// The backend's view of upstream votes, as core NATS subscribers.
	var mu sync.Mutex
	got := map[string][]string{}
	sub, err := f.nc.Subscribe("semko.v1.devices.*.vote", func(m *nats.Msg) {
		mu.Lock()
		got[m.Subject] = append(got[m.Subject], string(m.Data))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_ = f.nc.Flush()

	kp1, err := f.dial(1, "kp-1", "kp-1", "s1")
	if err != nil {
		t.Fatalf("kp-1 with its secret: %v", err)
	}
	defer kp1.Disconnect(0)

	for _, bad := range []struct{ name, id, user, secret, reason string }{
		{"wrong secret", "kp-2", "kp-2", "nope", "secret"},
		{"unknown account", "kp-9", "kp-9", "s9", "unknown"},
		{"another device's client id", "kp-2", "kp-1", "s1", "client_id"},
	} {
		before := f.refusals(t, bad.reason)
		if cl, err := f.dial(2, bad.id, bad.user, bad.secret); err == nil {
			cl.Disconnect(0)
			t.Errorf("%s: admitted", bad.name)
		}
		if after := f.refusals(t, bad.reason); after != before+1 {
			t.Errorf("%s: refusals[%s] %v -> %v, want +1", bad.name, bad.reason, before, after)
		}
	}

	// nats-server itself refuses a '.' in an MQTT client id (before the
	// callout): a device id with a dot cannot connect at all.
	if cl, err := f.dial(0, "kp.3", "kp.3", "s3"); err == nil {
		cl.Disconnect(0)
		t.Error("dotted device id admitted")
	}

	// Own-topic publish reaches the backend; a publish to kp-2's topic is
	// acknowledged (MQTT 3.1.1 has no way to refuse it) but dropped. The
	// own message after it proves the foreign one had its chance to arrive.
	pub := func(topic, body string) {
		tok := kp1.Publish(topic, 1, false, body)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	pub(protocol.DeviceTopic("kp-2", protocol.KindVote), "forged")
	pub(protocol.DeviceTopic("kp-1", protocol.KindVote), "own")
	testwait.Within(t, 10*time.Second, "kp-1's own vote", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["semko.v1.devices.kp-1.vote"]) == 1
	})
	mu.Lock()
	if n := len(got["semko.v1.devices.kp-2.vote"]); n != 0 {
		t.Errorf("kp-1's forged vote for kp-2 was delivered %d times", n)
	}
	mu.Unlock()

	// Own downstream subscription granted, another device's refused.
	tok := kp1.SubscribeMultiple(map[string]byte{
		protocol.DeviceTopic("kp-1", protocol.KindActivate): 1,
		protocol.DeviceTopic("kp-2", protocol.KindActivate): 1,
	}, nil)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	res := tok.(*paho.SubscribeToken).Result()
	if res[protocol.DeviceTopic("kp-1", protocol.KindActivate)] != 1 || res[protocol.DeviceTopic("kp-2", protocol.KindActivate)] != 0x80 {
		t.Errorf("SUBACK codes %v: want own 1, foreign 0x80", res)
	}

	// The observer may read alert notices and nothing else.
	app, err := f.dial(0, "tech-phone", "tech", "app")
	if err != nil {
		t.Fatalf("observer: %v", err)
	}
	tok = app.SubscribeMultiple(map[string]byte{protocol.Root + "/alerts/#": 0, protocol.DeviceTopic("kp-1", protocol.KindActivate): 0}, nil)
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("observer subscribe timed out")
	}
	res = tok.(*paho.SubscribeToken).Result()
	if res[protocol.Root+"/alerts/#"] != 0 || res[protocol.DeviceTopic("kp-1", protocol.KindActivate)] != 0x80 {
		t.Errorf("observer SUBACK codes %v", res)
	}
	app.Disconnect(0)

	// Rotation and retirement: the next CONNECT follows the new set.
	if err := f.creds.Replace([]broker.Credential{cred(t, "kp-1", "s1-new", broker.RoleDevice)}); err != nil {
		t.Fatal(err)
	}
	if cl, err := f.dial(0, "kp-1", "kp-1", "s1"); err == nil {
		cl.Disconnect(0)
		t.Error("kp-1's old secret admitted after rotation")
	}
	if cl, err := f.dial(0, "kp-2", "kp-2", "s2"); err == nil {
		cl.Disconnect(0)
		t.Error("retired kp-2 admitted")
	}
	cl, err := f.dial(2, "kp-1", "kp-1", "s1-new")
	if err != nil {
		t.Fatalf("kp-1's new secret: %v", err)
	}
	cl.Disconnect(0)
}
