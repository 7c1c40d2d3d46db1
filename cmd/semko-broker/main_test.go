package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/semko/semko/broker"
	"github.com/semko/semko/firmware-sim/fleet"
)

func hashOf(t *testing.T, secret string) string {
	t.Helper()
	h, err := broker.HashSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func writeFile(t *testing.T, path, body string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadAccounts(t *testing.T) {
	dir := t.TempDir()
	model := fleet.Generate(fleet.Spec{Seed: 3, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 2})
	fleetFile := filepath.Join(dir, "fleet.yaml")
	if err := model.WriteFleetFile(fleetFile, broker.HashSecret); err != nil {
		t.Fatal(err)
	}
	first := model.Devices[0].ID
	good := writeFile(t, filepath.Join(dir, "ok.yaml"), fmt.Sprintf(
		"- username: semko-backend\n  hash: %s\n  role: backend\n- username: %s\n  hash: %s\n  role: device\n",
		hashOf(t, "backend-secret-0123456789abcdef"), first, hashOf(t, "replaced-secret-0123456789abcdef")))
	badRole := writeFile(t, filepath.Join(dir, "role.yaml"), "- username: x\n  hash: h\n  role: admin\n")
	unknownKey := writeFile(t, filepath.Join(dir, "key.yaml"), "- username: x\n  password: h\n  role: device\n")

	cases := []struct {
		name        string
		cred, fleet string
		want        map[string]broker.Role // accounts expected
		wantErr     bool
	}{
		{name: "credentials only", cred: good, want: map[string]broker.Role{"semko-backend": broker.RoleBackend, first: broker.RoleDevice}},
		{name: "fleet only", fleet: fleetFile, want: map[string]broker.Role{first: broker.RoleDevice, model.Devices[1].ID: broker.RoleDevice}},
		{name: "both", cred: good, fleet: fleetFile, want: map[string]broker.Role{
			"semko-backend": broker.RoleBackend, first: broker.RoleDevice, model.Devices[1].ID: broker.RoleDevice}},
		{name: "none", wantErr: true},
		{name: "bad role", cred: badRole, wantErr: true},
		{name: "unknown key", cred: unknownKey, wantErr: true},
		{name: "missing file", cred: filepath.Join(dir, "nope.yaml"), wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			list, err := loadAccounts(tc.cred, tc.fleet)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("loadAccounts = %d accounts, want an error", len(list))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]broker.Role{}
			for _, c := range list {
				if _, dup := got[c.Username]; dup {
					t.Errorf("%s listed twice", c.Username)
				}
				got[c.Username] = c.Role
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("accounts %v, want %v", got, tc.want)
			}
			if _, err := broker.NewCredentials(list); err != nil {
				t.Errorf("broker refuses the accounts: %v", err)
			}
		})
	}
}

func TestHash(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"hash"}, strings.NewReader("a-device-secret-0123456789abcdef\n"), &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(out.String(), "sha256$") {
		t.Fatalf("hash output %q", out.String())
	}
	if code := run([]string{"hash"}, strings.NewReader(""), &out); code == 0 {
		t.Fatal("empty secret accepted")
	}
}

// TestRunAndReload runs the real main on a free port: an account added to
// the credentials file can log in after SIGHUP, not before; SIGTERM stops it.
func TestRunAndReload(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const user, secret = "app", "observer-secret-0123456789abcdef"
	creds := writeFile(t, filepath.Join(dir, "accounts.yaml"), fmt.Sprintf(
		"- username: semko-backend\n  hash: %s\n  role: backend\n", hashOf(t, "backend-secret-0123456789abcdef")))

	done := make(chan int, 1)
	go func() {
		done <- run([]string{"-mqtt", addr, "-data", filepath.Join(dir, "data"), "-credentials", creds, "-log-level", "error"}, nil, nil)
	}()
	connect := func() error {
		o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(user).SetUsername(user).
			SetPassword(secret).SetProtocolVersion(4).SetConnectTimeout(2 * time.Second)
		c := paho.NewClient(o)
		tok := c.Connect()
		if !tok.WaitTimeout(5 * time.Second) {
			return errors.New("connect timed out")
		}
		if tok.Error() == nil {
			c.Disconnect(0)
		}
		return tok.Error()
	}
	// Up, and refusing the unknown account.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("broker did not listen")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := connect(); err == nil {
		t.Fatal("unknown account let in")
	}

	f, err := os.OpenFile(creds, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "- username: %s\n  hash: %s\n  role: observer\n", user, hashOf(t, secret))
	f.Close()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for connect() != nil {
		if time.Now().After(deadline) {
			t.Fatal("account added to the file not accepted after SIGHUP")
		}
		time.Sleep(50 * time.Millisecond)
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop on SIGTERM")
	}
}
