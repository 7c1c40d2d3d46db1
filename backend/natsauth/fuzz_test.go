package natsauth_test

import (
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/semko/semko/backend/natsauth"
	"github.com/semko/semko/broker"
)

// FuzzAnswer feeds arbitrary requests to the callout: it must never panic,
// never return nil, and never admit anybody whose request did not carry a
// known account's secret.
func FuzzAnswer(f *testing.F) {
	issuer, _ := nkeys.CreateAccount()
	creds, err := broker.NewCredentials(nil)
	if err != nil {
		f.Fatal(err)
	}
	svc, err := natsauth.New(natsauth.Options{Issuer: issuer, Credentials: creds})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(""))
	f.Add([]byte("eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.x"))
	if req := sampleRequest(f); req != "" {
		f.Add([]byte(req))
	}
	f.Fuzz(func(t *testing.T, req []byte) {
		out := svc.Answer(req)
		if out == nil {
			t.Fatal("nil answer")
		}
		if len(out) == 0 {
			return
		}
		resp, err := jwt.DecodeAuthorizationResponseClaims(string(out))
		if err != nil {
			t.Fatalf("answer unreadable: %v", err)
		}
		if resp.Jwt != "" {
			t.Fatalf("admitted with an empty credential set: %q", req)
		}
	})
}

// sampleRequest is a well-formed request for an unknown user, as the
// server would send it.
func sampleRequest(f *testing.F) string {
	server, _ := nkeys.CreateServer()
	spub, _ := server.PublicKey()
	user, _ := nkeys.CreateUser()
	upub, _ := user.PublicKey()
	rc := jwt.NewAuthorizationRequestClaims(spub)
	rc.Server = jwt.ServerID{Name: "n1", ID: spub}
	rc.UserNkey = upub
	rc.ConnectOptions.Username, rc.ConnectOptions.Password = "kp-1", "s1"
	rc.ClientInformation.MQTT = "kp-1"
	tok, err := rc.Encode(server)
	if err != nil {
		f.Fatal(err)
	}
	return tok
}
