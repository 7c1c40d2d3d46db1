package backend_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/protocol"
)

// A New that fails late must release what it opened: the spool's directory
// lock and the databases. Otherwise the retry a supervisor makes after
// fixing the config fails with "locked".
func TestNewFailureReleasesEverything(t *testing.T) {
	cfg := newTestConfig(t, fleet.Generate(fleet.Spec{Seed: 1}), nil)

	bad := cfg
	bad.Rollup.TimeZone = "Nowhere/Atlantis" // fails after the spool and databases are open
	if _, err := backend.New(bad, testLogger(t)); err == nil {
		t.Fatal("New with a bad time zone succeeded")
	}
	app, err := backend.New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New after a failed New: %v", err)
	}
	app.Close()
}

// Accounts from the config (an observer app) log in beside the devices and
// may read alerts, not votes' topics for writing.
func TestConfiguredAccounts(t *testing.T) {
	cfg := newTestConfig(t, fleet.Generate(fleet.Spec{Seed: 1}), nil)
	hash, err := broker.HashSecret("phone-app-secret")
	if err != nil {
		t.Fatal(err)
	}
	cfg.MQTT.Accounts = []broker.Credential{{Username: "tech-app", Hash: hash, Role: broker.RoleObserver}}
	app := newApp(t, cfg, testLogger(t))
	stop := startApp(t, app)
	t.Cleanup(func() { _ = stop() }) // Run's error is not checked

	connect := func(secret string) error {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + app.MQTTAddr()).
			SetClientID("tech-app-1").SetUsername("tech-app").SetPassword(secret).SetProtocolVersion(4))
		tok := c.Connect()
		tok.WaitTimeout(5 * time.Second)
		if tok.Error() == nil {
			defer c.Disconnect(0)
			sub := c.Subscribe(protocol.AlertFilter("", ""), 1, nil)
			sub.WaitTimeout(5 * time.Second)
			if st, ok := sub.(*paho.SubscribeToken); ok {
				if codes := st.Result(); codes[protocol.AlertFilter("", "")] == 0x80 {
					return errors.New("alerts subscription refused")
				}
			}
		}
		return tok.Error()
	}
	if err := connect("phone-app-secret"); err != nil {
		t.Errorf("observer account: %v", err)
	}
	if err := connect("wrong"); err == nil {
		t.Error("observer account with a wrong secret connected")
	}
}

func TestAccountsFromConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "semko.yaml")
	yaml := "mqtt:\n  accounts:\n    - {username: tech-app, hash: \"sha256$00$00\", role: observer}\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := backend.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.MQTT.Accounts; len(got) != 1 || got[0].Username != "tech-app" || got[0].Role != broker.RoleObserver {
		t.Errorf("accounts = %+v", got)
	}
}

// The example configuration in deploy/ loads, so what users copy works.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := backend.LoadConfig("../deploy/semko.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Diagnostics.Firmware.Target != "1.4.2" || len(cfg.Alerts.Receivers) != 2 {
		t.Errorf("example not read as written: %+v %+v", cfg.Diagnostics.Firmware, cfg.Alerts.Receivers)
	}
}
