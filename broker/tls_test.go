package broker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/semko/semko/protocol"
)

// testPKI is a throwaway CA with one server and one client certificate.
type testPKI struct {
	pool           *x509.CertPool
	server, client tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := key()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "semko test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) tls.Certificate {
		k := key()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return testPKI{
		pool:   pool,
		server: leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth),
		client: leaf(3, dev1, x509.ExtKeyUsageClientAuth),
	}
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
