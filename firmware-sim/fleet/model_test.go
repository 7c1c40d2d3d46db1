package fleet

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/semko/semko/protocol"
)

// fakeHash is deterministic, unlike broker.HashSecret (random salt), and
// has the same "sha256$<salt>$<digest>" shape.
func fakeHash(secret string) (string, error) {
	sum := sha256.Sum256([]byte("00" + secret))
	return "sha256$00$" + hex.EncodeToString(sum[:]), nil
}

func TestGenerateDeterministic(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
	}{
		{"one unit", Spec{Seed: 1}},
		{"small", Spec{Seed: 7, Orgs: 2, SitesPerOrg: 2, CountersPerSite: 3, OperatorsPerSite: 2, Services: 3}},
		{"many services", Spec{Seed: -3, Orgs: 6, SitesPerOrg: 1, CountersPerSite: 2, Services: 25, FW: "1.5.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := Generate(tt.spec), Generate(tt.spec)
			if !reflect.DeepEqual(a, b) {
				t.Fatal("same spec gave different models")
			}
			dir := t.TempDir()
			pa, pb := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
			if err := a.WriteFleetFile(pa, fakeHash); err != nil {
				t.Fatal(err)
			}
			if err := b.WriteFleetFile(pb, fakeHash); err != nil {
				t.Fatal(err)
			}
			da, _ := os.ReadFile(pa)
			db, _ := os.ReadFile(pb)
			if !bytes.Equal(da, db) {
				t.Fatal("same spec gave different fleet files")
			}
			checkModel(t, tt.spec.withDefaults(), a)

			other := tt.spec
			other.Seed++
			if reflect.DeepEqual(Generate(other).Devices, a.Devices) {
				t.Fatal("another seed gave the same devices")
			}
		})
	}
}

func checkModel(t *testing.T, spec Spec, m *Model) {
	t.Helper()
	if got, want := len(m.Devices), spec.Orgs*spec.SitesPerOrg*spec.CountersPerSite; got != want {
		t.Fatalf("%d devices, want %d", got, want)
	}
	if got, want := len(m.Operators), spec.Orgs*spec.SitesPerOrg*spec.OperatorsPerSite; got != want {
		t.Fatalf("%d operators, want %d", got, want)
	}
	if len(m.Services) != spec.Services {
		t.Fatalf("%d services, want %d", len(m.Services), spec.Services)
	}
	seen := map[string]bool{}
	unique := func(kind, id string) {
		if err := protocol.ValidateDeviceID(id); err != nil {
			t.Fatalf("%s id: %v", kind, err)
		}
		if seen[kind+id] {
			t.Fatalf("duplicate %s id %q", kind, id)
		}
		seen[kind+id] = true
	}
	for _, d := range m.Devices {
		unique("device", d.ID)
		if d.Secret != DeviceSecret(spec.Seed, d.ID) || len(d.Secret) < 32 {
			t.Fatalf("device %s secret not derived from seed", d.ID)
		}
		if d.FW != spec.FW {
			t.Fatalf("device %s fw %q", d.ID, d.FW)
		}
	}
	for _, o := range m.Orgs {
		unique("org", o.ID)
		for _, s := range o.Sites {
			unique("site", s.ID)
			for _, c := range s.Counters {
				unique("counter", c.ID)
				if m.Operator(c.Operator) == nil {
					t.Fatalf("counter %s operator %q unknown", c.ID, c.Operator)
				}
			}
		}
	}
	for _, op := range m.Operators {
		unique("operator", op.ID)
		var sum float64
		for _, p := range op.Mix {
			sum += p
		}
		if sum < 0.999 || sum > 1.001 {
			t.Fatalf("operator %s mix sums to %v", op.ID, sum)
		}
	}
	for _, s := range m.Services {
		unique("service", s.ID)
	}
}

func TestFleetFileParses(t *testing.T) {
	m := Generate(Spec{Seed: 42, Orgs: 2, SitesPerOrg: 2, CountersPerSite: 2, OperatorsPerSite: 3, Services: 4})
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := m.WriteFleetFile(path, fakeHash); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("installed: 20")) || bytes.Contains(data, []byte("installed: \"")) {
		t.Fatalf("installed is not a plain date:\n%s", data)
	}

	// Decode strictly into the documented shape, as the registry does.
	var ff struct {
		Organisations []struct {
			ID, Name, Timezone string
			Sites              []struct {
				ID, Name, Timezone string
				Responsible        struct{ Name, Email, Lang string }
				Counters           []struct{ ID, Name, Device, Operator, Service string }
			}
		}
		Devices []struct {
			ID         string
			SecretHash string `yaml:"secret_hash"`
			Model      string
			Serial     string
			FW         string
			Installed  string
		}
		Operators []struct{ ID, Name, Org string }
		Services  []struct{ ID, Name string }
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&ff); err != nil {
		t.Fatalf("decode: %v\n%s", err, data)
	}
	if len(ff.Organisations) != 2 || len(ff.Devices) != 8 || len(ff.Operators) != 12 || len(ff.Services) != 4 {
		t.Fatalf("counts: %d orgs, %d devices, %d operators, %d services",
			len(ff.Organisations), len(ff.Devices), len(ff.Operators), len(ff.Services))
	}
	d := ff.Devices[0]
	want, _ := fakeHash(m.Devices[0].Secret)
	if d.ID != "kp-0001" || d.SecretHash != want || d.Model != "SK5" || d.Serial != "SK5-000001" ||
		d.FW != "1.4.2" || d.Installed != m.Devices[0].Installed.Format("2006-01-02") {
		t.Fatalf("device 0 = %+v", d)
	}
	c := ff.Organisations[0].Sites[0].Counters[0]
	if c.Device != "kp-0001" || !strings.HasPrefix(c.Operator, "op-") || c.Service == "" {
		t.Fatalf("counter 0 = %+v", c)
	}
	if r := ff.Organisations[0].Sites[0].Responsible; r.Email == "" || r.Lang == "" {
		t.Fatalf("responsible = %+v", r)
	}
	if ff.Organisations[0].Timezone != "Europe/Sofia" {
		t.Fatalf("timezone %q", ff.Organisations[0].Timezone)
	}
}

// TestLinkRSSI: every simulated unit reports a plausible Wi-Fi signal, the
// same for a unit on every run, and not the same for the whole fleet.
func TestLinkRSSI(t *testing.T) {
	levels := map[int]bool{}
	for _, id := range []string{"kp-0001", "kp-0002", "kp-0003", "kp-0004", "kp-0005"} {
		a, b := linkRSSI(id), linkRSSI(id)
		for range 20 {
			va, vb := a(), b()
			if va != vb {
				t.Fatalf("%s: %d and %d on two runs", id, va, vb)
			}
			if va < -85 || va > -45 {
				t.Fatalf("%s: RSSI %d dBm out of range", id, va)
			}
			levels[va] = true
		}
	}
	if len(levels) < 3 {
		t.Fatalf("the fleet reports only %v", levels)
	}
}
