package diagnostics

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/fleet/live"
	"github.com/semko/semko/fleet/devconfig"
	"github.com/semko/semko/fleet/registry"
)

// recorder is an alert.Raiser that keeps what it was told.
type recorder struct {
	mu     sync.Mutex
	raised []alert.Finding
	solved []alert.Finding
	open   map[string]alert.Finding
}

func newRecorder() *recorder { return &recorder{open: make(map[string]alert.Finding)} }

func (r *recorder) Raise(_ context.Context, f alert.Finding) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.raised = append(r.raised, f)
	r.open[f.Key()] = f
	return nil
}

func (r *recorder) Resolve(_ context.Context, kind alert.Kind, s alert.Subject, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := alert.Finding{Kind: kind, Subject: s}.Key()
	f, ok := r.open[key]
	if !ok {
		return nil // like the alert manager: nothing open, nothing to do
	}
	r.solved = append(r.solved, f)
	delete(r.open, key)
	return nil
}

// firing returns "device kind" for every open alert, sorted.
func (r *recorder) firing() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, f := range r.open {
		out = append(out, f.Subject.Device+" "+string(f.Kind))
	}
	sort.Strings(out)
	return out
}

func (r *recorder) raisedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.raised)
}

// find returns the open finding of kind for device.
func (r *recorder) find(device string, kind alert.Kind) (alert.Finding, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.open {
		if f.Subject.Device == device && f.Kind == kind {
			return f, true
		}
	}
	return alert.Finding{}, false
}

// fiveMinutes is site-b's configured heartbeat interval, in seconds.
var fiveMinutes = 300

const testHash = "sha256$00$0000000000000000000000000000000000000000000000000000000000000000"

// testRegistry has two sites: site-a with counters c-1 (kp-1) and c-2
// (kp-2), site-b with c-3 (kp-3); kp-9 is a spare in stock.
func testRegistry(t testing.TB) *registry.Registry {
	t.Helper()
	reg, err := registry.Build(registry.File{
		Organisations: []registry.FileOrg{{ID: "org", Timezone: "UTC", Sites: []registry.FileSite{
			{ID: "site-a", Name: "Sofia centre", Counters: []registry.FileCounter{
				{ID: "c-1", Name: "Counter 1", Device: "kp-1"}, {ID: "c-2", Name: "Counter 2", Device: "kp-2"}}},
			{ID: "site-b", Config: &devconfig.Override{HeartbeatS: &fiveMinutes},
				Counters: []registry.FileCounter{{ID: "c-3", Device: "kp-3"}}},
		}}},
		Devices: []registry.FileDevice{
			{ID: "kp-1", SecretHash: testHash, Model: "SK5"},
			{ID: "kp-2", SecretHash: testHash, Model: "SK5"},
			{ID: "kp-3", SecretHash: testHash, Model: "SK7"},
			{ID: "kp-9", SecretHash: testHash, Model: "SK5"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// fakeFleet is a live state the test edits.
type fakeFleet struct {
	mu     sync.Mutex
	reg    *registry.Registry
	states map[string]live.DeviceState
}

func newFakeFleet(t testing.TB, now time.Time) *fakeFleet {
	f := &fakeFleet{reg: testRegistry(t), states: make(map[string]live.DeviceState)}
	for _, d := range f.reg.Devices() {
		p, _ := f.reg.Placement(d.ID)
		f.states[d.ID] = healthy(d.ID, p, now)
	}
	return f
}

func healthy(id string, p registry.Placement, now time.Time) live.DeviceState {
	return live.DeviceState{
		Device: id, Placement: p, Online: true, LastSeen: now, LastHeartbeat: now, HeartbeatReceived: now,
		HeartbeatEvery: time.Minute, FW: "1.4.2", BootID: "b-1",
		Health: live.Health{PanelOK: true, BacklightOK: true, Presses: [5]uint64{1, 1, 2, 5, 9}},
	}
}

func (f *fakeFleet) devices() []live.DeviceState {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []live.DeviceState
	for _, d := range f.reg.Devices() {
		out = append(out, f.states[d.ID])
	}
	return out
}

func (f *fakeFleet) registry() *registry.Registry { return f.reg }

func (f *fakeFleet) edit(id string, fn func(*live.DeviceState)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.states[id]
	fn(&s)
	f.states[id] = s
}

// pubRecorder records published commands.
type pubRecorder struct {
	mu     sync.Mutex
	topics []string
}

func (p *pubRecorder) Publish(topic string, _ []byte, _ bool, _ byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.topics = append(p.topics, topic)
	return nil
}

func (p *pubRecorder) sent() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.topics...)
}
