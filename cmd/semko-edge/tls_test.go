package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestClientTLS(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kp-0001"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert := write("c.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyFile := write("c.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	junk := write("junk.pem", []byte("not a certificate"))

	cases := []struct {
		name              string
		ca, cert, key     string
		wantNil, wantErr  bool
		wantRoots, wantCC bool
	}{
		{name: "nothing: system roots", wantNil: true},
		{name: "ca only", ca: cert, wantRoots: true},
		{name: "mutual", ca: cert, cert: cert, key: keyFile, wantRoots: true, wantCC: true},
		{name: "cert without key", cert: cert, wantErr: true},
		{name: "ca without certificates", ca: junk, wantErr: true},
		{name: "missing ca", ca: filepath.Join(dir, "nope"), wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := clientTLS(tc.ca, tc.cert, tc.key)
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
			if (c.RootCAs != nil) != tc.wantRoots || (len(c.Certificates) > 0) != tc.wantCC {
				t.Errorf("roots %v, client certs %d", c.RootCAs != nil, len(c.Certificates))
			}
		})
	}
}
