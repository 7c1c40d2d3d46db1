package configpush_test

import (
	"errors"
	"testing"

	"github.com/semko/semko/backend/fleet/configpush"
	"github.com/semko/semko/fleet/devconfig"
	"github.com/semko/semko/protocol"
)

func ptr[T any](v T) *T { return &v }

// fakePublisher records publishes and fails for devices in fail.
type fakePublisher struct {
	got  map[string][]byte
	n    int
	fail map[string]bool
}

func (f *fakePublisher) Publish(topic string, payload []byte, retain bool, qos byte) error {
	tp, err := protocol.ParseTopic(topic)
	if err != nil || !retain || qos != 1 || tp.Kind != protocol.KindConfig {
		return errors.New("bad publish")
	}
	if f.fail[tp.Device] {
		return errors.New("broker closed")
	}
	f.n++
	f.got[tp.Device] = payload
	return nil
}

func TestPusher(t *testing.T) {
	pub := &fakePublisher{got: map[string][]byte{}, fail: map[string]bool{}}
	p := configpush.NewPusher(pub, nil)
	c1, _ := devconfig.Resolve()
	c2, _ := devconfig.Resolve(&devconfig.Override{VoteWindowS: ptr(40)})

	steps := []struct {
		name    string
		desired map[string]protocol.Config
		fail    string
		want    int // publishes
		wantErr bool
	}{
		{"first sync publishes all", map[string]protocol.Config{"a": c1, "b": c1}, "", 2, false},
		{"unchanged publishes nothing", map[string]protocol.Config{"a": c1, "b": c1}, "", 0, false},
		{"one changed", map[string]protocol.Config{"a": c1, "b": c2}, "", 1, false},
		{"failure not recorded", map[string]protocol.Config{"a": c2, "b": c2}, "a", 0, true},
		{"retried next time", map[string]protocol.Config{"a": c2, "b": c2}, "", 1, false},
		{"removed device cleared", map[string]protocol.Config{"a": c2}, "", 1, false},
	}
	for _, st := range steps {
		pub.n, pub.fail = 0, map[string]bool{st.fail: st.fail != ""}
		n, err := p.Sync(st.desired)
		if n != st.want || pub.n != st.want || (err != nil) != st.wantErr {
			t.Fatalf("%s: published %d (reported %d), err %v; want %d, err %v", st.name, pub.n, n, err, st.want, st.wantErr)
		}
	}
	if len(pub.got["b"]) != 0 || p.Published("b") != "" {
		t.Errorf("b not cleared: %q", pub.got["b"])
	}
	// After a restart: devices that may hold an old retained config are
	// cleared unless desired, and desired ones published again.
	p2 := configpush.NewPusher(pub, nil)
	p2.Suspect([]string{"a", "z"})
	pub.n, pub.fail = 0, map[string]bool{}
	pub.got["z"] = []byte("old")
	if n, err := p2.Sync(map[string]protocol.Config{"a": c2}); n != 2 || err != nil || len(pub.got["z"]) != 0 {
		t.Errorf("after restart: %d publishes, err %v, z holds %q", n, err, pub.got["z"])
	}
	cfg, err := protocol.Decode[protocol.Config](pub.got["a"])
	if err != nil || cfg.Version != c2.Version || p.Published("a") != c2.Version {
		t.Errorf("a holds %+v, %v", cfg, err)
	}
}
