package backend_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/edge"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/firmware-sim/keypad"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/testpki"
	"github.com/semko/semko/internal/testwait"
	"github.com/semko/semko/protocol"
)

// TestTLSEndToEnd runs the backend with MQTT over TLS only and the API on
// HTTPS, with certificates from a throwaway CA. A real edge connects with
// ssl:// and the CA as its root (and, for mutual TLS, a client
// certificate); one press reaches InfluxDB. With mutual TLS, a client
// without a certificate is refused.
func TestTLSEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts InfluxDB")
	}
	db := influxlocal.StartForTest(t)
	ca := testpki.NewCA(t, "ca")
	dir := t.TempDir()
	caFile, _ := ca.WriteFiles(t, dir)
	certFile, keyFile := ca.Issue(t, "server").WriteFiles(t, dir)

	cases := []struct {
		name   string
		mutual bool
	}{
		{name: "server-tls", mutual: false},
		{name: "mutual-tls", mutual: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			model := fleet.Generate(fleet.Spec{Seed: 5, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 1})
			dev := model.Devices[0]
			cfg := newTestConfig(t, model, db)
			cfg.MQTT.Addr = "" // TLS only
			cfg.MQTT.TLSAddr = "127.0.0.1:0"
			cfg.MQTT.CertFile, cfg.MQTT.KeyFile = certFile, keyFile
			if tc.mutual {
				cfg.MQTT.ClientCAFile = caFile
			}
			cfg.HTTP.CertFile, cfg.HTTP.KeyFile = certFile, keyFile
			app := runBackend(t, cfg)
			mqttAddr := app.MQTTTLSAddr()
			if mqttAddr == "" {
				t.Fatal("no TLS listener")
			}

			clientTLS := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
			if tc.mutual {
				// Without a certificate the handshake fails.
				if err := tlsHandshake(mqttAddr, clientTLS); err == nil {
					t.Fatal("mutual TLS: client without certificate accepted")
				}
				clientTLS.Certificates = []tls.Certificate{ca.Issue(t, dev.ID).Pair}
			}
			// A client that does not trust the CA is refused either way.
			if err := tlsHandshake(mqttAddr, &tls.Config{MinVersion: tls.VersionTLS12}); err == nil {
				t.Fatal("client without the CA completed a handshake")
			}

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			kp, agent := startEdge(t, ctx, edge.Config{
				Device: dev.ID, Secret: dev.Secret, Broker: "ssl://" + mqttAddr, TLS: clientTLS,
				DataDir: t.TempDir(), Defaults: edge.DefaultConfig(), Logger: testLogger(t),
			}, keypad.Options{FW: dev.FW, Serial: dev.Serial, Model: dev.Model, Logger: testLogger(t)})
			testwait.For(t, "edge connected over TLS", func() bool { return agent.Stats().Connected })

			act := "tls-" + tc.name
			voteOnce(t, ctx, db, agent, kp, act, 5)

			// The API answers on HTTPS to a client trusting the CA, with
			// the token; plain HTTP on the same port gets nowhere.
			hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
			req, _ := http.NewRequest(http.MethodGet, "https://"+app.HTTPAddr()+"/api/v1/devices", nil)
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("https api: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET /api/v1/devices over HTTPS = %d", resp.StatusCode)
			}
			if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + app.HTTPAddr() + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					t.Error("plain HTTP answered 200 on the HTTPS port")
				}
			}
		})
	}
}

// tlsHandshake completes a TLS handshake and one read, which is where TLS 1.3
// reports a refused client certificate.
func tlsHandshake(addr string, tc *tls.Config) error {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, tc)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond)); err != nil {
		return err
	}
	var b [1]byte
	_, err = conn.Read(b[:])
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return nil // the server kept the connection: accepted
	}
	return err
}

// TestExternalBrokerTLS: the broker runs alone with MQTT over TLS only and
// mutual TLS; the backend connects to it as a client (mqtt.external with
// ca_file, cert_file, key_file), a real edge too; one press reaches
// InfluxDB.
func TestExternalBrokerTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts InfluxDB")
	}
	db := influxlocal.StartForTest(t)
	ca := testpki.NewCA(t, "ca")
	dir := t.TempDir()
	caFile, _ := ca.WriteFiles(t, dir)
	srvPair := ca.Issue(t, "127.0.0.1").Pair
	model := fleet.Generate(fleet.Spec{Seed: 6, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 1})
	dev := model.Devices[0]

	b, err := broker.New(broker.Options{
		TLSAddr: "127.0.0.1:0", DataDir: t.TempDir(), Credentials: standaloneCredentials(t, model), Logger: testLogger(t),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{srvPair}, MinVersion: tls.VersionTLS12,
			ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })

	beCert, beKey := ca.Issue(t, backendAccount).WriteFiles(t, dir)
	cfg := newTestConfig(t, model, db)
	cfg.MQTT.Addr = ""
	cfg.MQTT.External = backend.ExternalMQTTConfig{
		URL: "ssl://" + b.TLSAddr(), Username: backendAccount, Secret: backendSecret,
		CAFile: caFile, CertFile: beCert, KeyFile: beKey,
	}
	app := runBackend(t, cfg)
	testwait.For(t, "backend connected over mutual TLS", func() bool { return app.Ready() == nil })

	pair := ca.Issue(t, dev.ID).Pair
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kp, agent := startEdge(t, ctx, edge.Config{
		Device: dev.ID, Secret: dev.Secret, Broker: "ssl://" + b.TLSAddr(),
		TLS:     &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		DataDir: t.TempDir(), Defaults: edge.DefaultConfig(), Logger: testLogger(t),
	}, keypad.Options{FW: dev.FW, Serial: dev.Serial, Model: dev.Model, Logger: testLogger(t)})
	testwait.For(t, "edge connected over mutual TLS", func() bool { return agent.Stats().Connected })

	voteOnce(t, ctx, db, agent, kp, "tls-external", 4)
}

// voteOnce activates the keypad behind agent as activation act, presses
// score and waits for the valid vote in InfluxDB.
func voteOnce(t *testing.T, ctx context.Context, db *influxlocal.Server, agent *edge.Agent, kp *keypad.Keypad, act string, score int) {
	t.Helper()
	if err := agent.Activate(ctx, protocol.Activate{V: protocol.Version, ID: act}); err != nil {
		t.Fatalf("activate: %v", err)
	}
	if err := kp.Press(ctx, score); err != nil {
		t.Fatalf("press: %v", err)
	}
	q := fmt.Sprintf(`SELECT count(score) FROM vote WHERE activation='%s' AND valid='true'`, act)
	testwait.For(t, "the vote in InfluxDB", func() bool { return sum(countAll(t, db, q)) == 1 })
}
