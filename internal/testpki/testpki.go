// Package testpki issues throwaway certificates for tests: a CA and the
// leaf certificates it signs, valid for an hour around now, for 127.0.0.1
// and localhost, as server and as client.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Cert is a certificate with its key, parsed, as a TLS pair and as PEM.
type Cert struct {
	Name            string // the subject's common name
	X509            *x509.Certificate
	Pair            tls.Certificate // for tls.Config.Certificates
	CertPEM, KeyPEM []byte
	key             *ecdsa.PrivateKey
}

// NewCA returns a self-signed CA certificate for name.
func NewCA(t testing.TB, name string) *Cert {
	t.Helper()
	return issue(t, name, nil)
}

// Issue returns a leaf certificate for name signed by ca.
func (ca *Cert) Issue(t testing.TB, name string) *Cert {
	t.Helper()
	return issue(t, name, ca)
}

// Pool returns a pool holding c, for tls.Config.RootCAs or ClientCAs.
func (c *Cert) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.X509)
	return p
}

// WriteFiles writes c's certificate and key as PEM files <Name>.crt and
// <Name>.key in dir, and returns their paths.
func (c *Cert) WriteFiles(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, c.Name+".crt"), filepath.Join(dir, c.Name+".key")
	if err := os.WriteFile(certFile, c.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, c.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// issue signs a certificate for name with parent, or a self-signed CA
// certificate when parent is nil.
func issue(t testing.TB, name string, parent *Cert) *Cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		signer, signerKey = parent.X509, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cert{Name: name, key: key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	if c.X509, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	if c.Pair, err = tls.X509KeyPair(c.CertPEM, c.KeyPEM); err != nil {
		t.Fatal(err)
	}
	return c
}
