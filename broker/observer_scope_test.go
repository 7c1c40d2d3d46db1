package broker

import (
	"testing"

	"github.com/semko/semko/protocol"
)

// TestScopedObserver: with real MQTT clients on the real broker, an
// observer account scoped to one organisation may subscribe to that
// organisation's alert notices only (SUBACK 0x80 for everything wider or
// elsewhere), and of the notices the backend publishes for two
// organisations it receives its own alone.
func TestScopedObserver(t *testing.T) {
	hash, err := HashSecret("bank-app-secret")
	if err != nil {
		t.Fatal(err)
	}
	creds := testCredentials(t)
	list := []Credential{{Username: "bank-app", Hash: hash, Role: RoleObserver, Orgs: []string{"bank"}}}
	for _, u := range []string{dev1, dev2, backendUser, observerUser} {
		cr, _ := creds.lookup(u)
		list = append(list, cr)
	}
	if err := creds.Replace(list); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, Options{Credentials: creds, Intake: newRecordingIntake()})
	addr := b.Addr()
	// In order: the checks below rely on the order the broker delivers.
	app := mustConnect(t, addr, "bank-app", "bank-app", "bank-app-secret", inOrder)
	for _, filter := range []string{
		protocol.AlertFilter("", ""),              // every organisation
		protocol.AlertFilter("muni", ""),          // another organisation
		protocol.Root + "/alerts/+/bank-centre/#", // a wildcard where the organisation goes
	} {
		if code, _ := subscribe(t, app, filter); code != 0x80 {
			t.Errorf("subscribe %s: SUBACK %#x, want 0x80", filter, code)
		}
	}
	code, got := subscribe(t, app, protocol.AlertFilter("bank", ""))
	if code == 0x80 {
		t.Fatal("own organisation's alerts refused")
	}
	// An unscoped observer hears both, so the notices are really there.
	all := mustConnect(t, addr, observerUser, observerUser, observerPw, inOrder)
	code, every := subscribe(t, all, protocol.AlertFilter("", ""))
	if code == 0x80 {
		t.Fatal("unscoped observer refused")
	}

	be := mustConnect(t, addr, backendUser, backendUser, backendPass)
	mustPublish(t, be, protocol.AlertTopic("muni", "muni-north", "offline"), []byte(`{"org":"muni"}`))
	mustPublish(t, be, protocol.AlertTopic("bank", "bank-centre", "offline"), []byte(`{"org":"bank"}`))
	if m := receive(t, every); m.Topic() != protocol.AlertTopic("muni", "muni-north", "offline") {
		t.Fatalf("unscoped observer received %s first", m.Topic())
	}
	// The muni notice went out first: had it leaked, it would arrive first.
	if m := receive(t, got); m.Topic() != protocol.AlertTopic("bank", "bank-centre", "offline") {
		t.Fatalf("scoped observer received %s", m.Topic())
	}
	select {
	case m := <-got:
		t.Fatalf("scoped observer received another notice: %s", m.Topic())
	default:
	}
}
