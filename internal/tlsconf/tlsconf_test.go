package tlsconf

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/semko/semko/internal/testpki"
)

// pki is a throwaway CA with a server and a client certificate, as files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey, junk string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	ca := testpki.NewCA(t, "ca")
	var p pki
	p.ca, _ = ca.WriteFiles(t, dir)
	p.serverCert, p.serverKey = ca.Issue(t, "server").WriteFiles(t, dir)
	p.clientCert, p.clientKey = ca.Issue(t, "client").WriteFiles(t, dir)
	p.junk = filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(p.junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClient(t *testing.T) {
	p := newPKI(t)
	cases := []struct {
		name              string
		ca, cert, key     string
		wantNil, wantErr  bool
		wantRoots, wantCC bool
	}{
		{name: "nothing: system roots", wantNil: true},
		{name: "ca only", ca: p.ca, wantRoots: true},
		{name: "mutual", ca: p.ca, cert: p.clientCert, key: p.clientKey, wantRoots: true, wantCC: true},
		{name: "certificate without ca", cert: p.clientCert, key: p.clientKey, wantCC: true},
		{name: "cert without key", cert: p.clientCert, wantErr: true},
		{name: "ca without certificates", ca: p.junk, wantErr: true},
		{name: "missing ca", ca: filepath.Join(t.TempDir(), "nope"), wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Client(tc.ca, tc.cert, tc.key)
			switch {
			case tc.wantErr:
				if err == nil {
					t.Fatal("want an error")
				}
				return
			case err != nil:
				t.Fatal(err)
			case tc.wantNil:
				if c != nil {
					t.Fatal("want nil config")
				}
				return
			}
			if (c.RootCAs != nil) != tc.wantRoots || (len(c.Certificates) > 0) != tc.wantCC || c.MinVersion != tls.VersionTLS12 {
				t.Errorf("roots %v, client certs %d, min version %x", c.RootCAs != nil, len(c.Certificates), c.MinVersion)
			}
		})
	}
}

func TestServer(t *testing.T) {
	p := newPKI(t)
	cases := []struct {
		name                string
		cert, key, clientCA string
		wantErr, wantMutual bool
	}{
		{name: "server tls", cert: p.serverCert, key: p.serverKey},
		{name: "mutual", cert: p.serverCert, key: p.serverKey, clientCA: p.ca, wantMutual: true},
		{name: "no key pair", wantErr: true},
		{name: "client ca without certificates", cert: p.serverCert, key: p.serverKey, clientCA: p.junk, wantErr: true},
		{name: "missing client ca", cert: p.serverCert, key: p.serverKey, clientCA: filepath.Join(t.TempDir(), "nope"), wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Server(tc.cert, tc.key, tc.clientCA)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			mutual := c.ClientAuth == tls.RequireAndVerifyClientCert && c.ClientCAs != nil
			if len(c.Certificates) != 1 || mutual != tc.wantMutual || c.MinVersion != tls.VersionTLS12 {
				t.Errorf("certs %d, mutual %v, min version %x", len(c.Certificates), mutual, c.MinVersion)
			}
		})
	}
}

// TestHandshake: a Client and a Server built from the same CA complete a
// mutual TLS handshake; a client without a certificate is refused.
func TestHandshake(t *testing.T) {
	p := newPKI(t)
	srv, err := Server(p.serverCert, p.serverKey, p.ca)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if c.(*tls.Conn).Handshake() == nil {
					c.Write([]byte{1})
				}
			}()
		}
	}()
	dial := func(cert, key string) error {
		tc, err := Client(p.ca, cert, key)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), tc)
		if err != nil {
			return err
		}
		defer conn.Close()
		// TLS 1.3 reports a refused client certificate at the first read.
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		var b [1]byte
		_, err = conn.Read(b[:])
		return err
	}
	if err := dial(p.clientCert, p.clientKey); err != nil {
		t.Errorf("client with a certificate: %v", err)
	}
	if err := dial("", ""); err == nil {
		t.Error("client without a certificate accepted")
	}
}
