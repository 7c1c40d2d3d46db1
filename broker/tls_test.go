package broker

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/semko/semko/internal/testpki"
	"github.com/semko/semko/protocol"
)

// testPKI is a throwaway CA with one server and one client certificate.
type testPKI struct {
	pool           *x509.CertPool
	server, client tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	ca := testpki.NewCA(t, "semko test CA")
	return testPKI{pool: ca.Pool(), server: ca.Issue(t, "127.0.0.1").Pair, client: ca.Issue(t, dev1).Pair}
}

func TestMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	in := newRecordingIntake()
	b := startBroker(t, Options{TLSAddr: "127.0.0.1:0", Intake: in, TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{pki.server},
		ClientCAs:    pki.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}})
	if b.Addr() != "" || b.TLSAddr() == "" {
		t.Fatalf("addresses tcp=%q tls=%q", b.Addr(), b.TLSAddr())
	}
	dial := func(certs []tls.Certificate) (paho.Client, error) {
		c := paho.NewClient(paho.NewClientOptions().
			AddBroker("ssl://" + b.TLSAddr()).
			SetClientID(dev1).SetUsername(dev1).SetPassword(dev1Secret).
			SetProtocolVersion(4).SetAutoReconnect(false).
			SetTLSConfig(&tls.Config{RootCAs: pki.pool, Certificates: certs, MinVersion: tls.VersionTLS12}))
		tok := c.Connect()
		tok.WaitTimeout(waitLong)
		if tok.Error() != nil {
			return nil, tok.Error()
		}
		t.Cleanup(func() { c.Disconnect(0) })
		return c, nil
	}

	if _, err := dial(nil); err == nil {
		t.Fatal("connected without a client certificate")
	}
	c, err := dial([]tls.Certificate{pki.client})
	if err != nil {
		t.Fatal(err)
	}
	payload := votePayload(t, dev1, 1)
	mustPublish(t, c, protocol.DeviceTopic(dev1, protocol.KindVote), payload)
	if m := in.next(t); m.ClientID != dev1 {
		t.Fatalf("intake got %+v", m)
	}
}
