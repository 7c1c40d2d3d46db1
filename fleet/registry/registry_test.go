package registry

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const examplePath = "../../deploy/fleet.example.yaml"

func TestExampleFleet(t *testing.T) {
	r, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(r.Organisations()); got != 3 {
		t.Errorf("organisations = %d, want 3", got)
	}
	if got := r.Len(); got != 7 {
		t.Errorf("devices = %d, want 7", got)
	}
	p, ok := r.Placement("kp-0002")
	want := Placement{Org: "sofia-municipality", Site: "sofia-mladost", Counter: "sofia-mladost-c2", Operator: "op-sofia-02", Service: "local-taxes"}
	if !ok || p != want {
		t.Errorf("Placement(kp-0002) = %+v, %v; want %+v", p, ok, want)
	}
	if _, ok := r.Placement("kp-9999"); ok {
		t.Error("unknown device has a placement")
	}
	d, _ := r.Device("kp-0003")
	if d.Installed != time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC) || d.Counter != "sofia-lozenets-c1" {
		t.Errorf("kp-0003 = %+v", d)
	}
	s, _ := r.Site("northbank-lisbon")
	if s.Timezone != "Europe/Lisbon" || s.Location == nil || s.Location.String() != "Europe/Lisbon" {
		t.Errorf("lisbon zone = %q %v", s.Timezone, s.Location)
	}
	s, _ = r.Site("sofia-lozenets")
	if s.Timezone != "Europe/Sofia" {
		t.Errorf("inherited zone = %q", s.Timezone)
	}
	c, _ := r.Counter("sofia-mladost-c1")
	if c.Responsible.Name != "Maria Ivanova" {
		t.Errorf("counter inherits responsible: %+v", c.Responsible)
	}
	c, _ = r.Counter("sofia-mladost-c2")
	if c.Responsible.Name != "Georgi Dimitrov" {
		t.Errorf("counter overrides responsible: %+v", c.Responsible)
	}
	creds := r.Credentials()
	if len(creds) != 7 || creds[0].Device != "kp-0001" || !strings.HasPrefix(creds[0].Hash, "sha256$") {
		t.Errorf("credentials = %v", creds)
	}
	devs := r.Devices()
	devs[0].ID = "changed"
	if d, _ := r.Device("kp-0001"); d.ID != "kp-0001" {
		t.Error("Devices leaks the snapshot's slice")
	}
}

// base is a small valid fleet the table below breaks one way at a time.
const base = `
organisations:
  - id: org-1
    name: One
    timezone: Europe/Sofia
    sites:
      - id: site-1
        name: Site
        counters:
          - {id: c-1, device: kp-1, operator: op-1, service: svc-1}
devices:
  - {id: kp-1, secret_hash: "sha256$00ff$0000000000000000000000000000000000000000000000000000000000000000", installed: "2026-01-15"}
operators:
  - {id: op-1, name: Op, org: org-1}
services:
  - {id: svc-1, name: Svc}
`

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		old     string // replaced in base by new; empty old means use new as the whole file
		new     string
		wantErr []string // substrings, all must appear
	}{
		{name: "valid"},
		{name: "empty file", new: "", old: "", wantErr: nil},
		{name: "unknown field", old: "name: Site", new: "nmae: Site", wantErr: []string{"field nmae not found"}},
		{name: "duplicate device", old: "operators:", new: "  - {id: kp-1, secret_hash: \"$2a$10$55yihBoIMeRTmQ8L34ZRdON3l.hJtNmJfWphquahYqp7xZX9rFS2K\"}\noperators:",
			wantErr: []string{"devices[1] (kp-1): duplicate device id \"kp-1\" (first at devices[0] (kp-1))"}},
		{name: "bad device id", old: "{id: kp-1, secret", new: "{id: kp/1, secret", wantErr: []string{"devices[0] (kp/1): bad id", "device \"kp-1\" is not in devices"}},
		{name: "missing secret", old: `secret_hash: "sha256$00ff$0000000000000000000000000000000000000000000000000000000000000000"`, new: `secret_hash: ""`,
			wantErr: []string{"devices[0] (kp-1): secret_hash missing"}},
		{name: "plain secret", old: `secret_hash: "sha256$00ff$0000000000000000000000000000000000000000000000000000000000000000"`, new: `secret_hash: "hunter2"`,
			wantErr: []string{"secret_hash is neither"}},
		{name: "odd salt", old: "sha256$00ff$", new: "sha256$00f$", wantErr: []string{"secret_hash is neither"}},
		{name: "bcrypt", old: `"sha256$00ff$0000000000000000000000000000000000000000000000000000000000000000"`, new: `"$2a$10$55yihBoIMeRTmQ8L34ZRdON3l.hJtNmJfWphquahYqp7xZX9rFS2K"`},
		{name: "bad zone", old: "Europe/Sofia", new: "Europe/Atlantis", wantErr: []string{"organisations[0] (org-1): timezone \"Europe/Atlantis\""}},
		{name: "missing zone", old: "timezone: Europe/Sofia", new: "", wantErr: []string{"timezone \"\" is not"}},
		{name: "bad site zone", old: "name: Site", new: "name: Site\n        timezone: Mars/Olympus", wantErr: []string{"sites[0] (site-1): timezone \"Mars/Olympus\""}},
		{name: "unknown operator", old: "operator: op-1", new: "operator: op-9", wantErr: []string{"counters[0] (c-1): operator \"op-9\" is not in operators"}},
		{name: "unknown service", old: "service: svc-1", new: "service: svc-9", wantErr: []string{"service \"svc-9\" is not in services"}},
		{name: "unknown device", old: "device: kp-1", new: "device: kp-9", wantErr: []string{"device \"kp-9\" is not in devices"}},
		{name: "operator of another org", old: "org: org-1}", new: "org: org-2}", wantErr: []string{"operators[0] (op-1): org \"org-2\" is not an organisation", "belongs to organisation \"org-2\""}},
		{name: "device at two counters", old: "service: svc-1}", new: "service: svc-1}\n          - {id: c-2, device: kp-1}",
			wantErr: []string{"counters[1] (c-2): device \"kp-1\" is already at organisations[0].sites[0].counters[0] (c-1)"}},
		{name: "duplicate counter", old: "service: svc-1}", new: "service: svc-1}\n          - {id: c-1}", wantErr: []string{"duplicate counter id \"c-1\""}},
		{name: "bad date", old: `"2026-01-15"`, new: `"15.01.2026"`, wantErr: []string{"installed \"15.01.2026\" is not a date"}},
		{name: "two documents", old: "services:", new: "---\nservices:", wantErr: []string{"more than one YAML document"}},
		{name: "not yaml", old: "organisations:", new: "organisations: [", wantErr: []string{"yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := base
			if tt.old != "" {
				if !strings.Contains(base, tt.old) {
					t.Fatalf("test bug: %q not in base", tt.old)
				}
				src = strings.Replace(base, tt.old, tt.new, 1)
			} else if tt.name == "empty file" {
				src = ""
			}
			r, err := Parse(strings.NewReader(src))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if r == nil {
					t.Fatal("nil registry")
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalidFleet) {
				t.Errorf("error does not wrap ErrInvalidFleet: %v", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Error("error echoes a secret")
			}
		})
	}
}

func TestZeroRegistry(t *testing.T) {
	var r Registry
	if _, ok := r.Device("kp-1"); ok {
		t.Error("zero registry knows a device")
	}
	if _, ok := r.Placement("kp-1"); ok {
		t.Error("zero registry places a device")
	}
	if len(r.Devices()) != 0 || len(r.Credentials()) != 0 {
		t.Error("zero registry not empty")
	}
}

func TestStoreReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fleet.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(base)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Current().Device("kp-1"); !ok {
		t.Fatal("kp-1 missing")
	}

	// A broken edit keeps the previous fleet and says why.
	write(strings.Replace(base, "operator: op-1", "operator: op-9", 1))
	err = s.Reload(path)
	if err == nil || !errors.Is(err, ErrInvalidFleet) || !strings.Contains(err.Error(), "op-9") {
		t.Fatalf("Reload = %v", err)
	}
	if _, ok := s.Current().Device("kp-1"); !ok {
		t.Fatal("failed reload dropped the old fleet")
	}

	// A good edit takes effect; readers racing with it see one or the other.
	write(strings.Replace(base, "kp-1", "kp-2", -1))
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				r := s.Current()
				_, one := r.Device("kp-1")
				_, two := r.Device("kp-2")
				if one == two {
					t.Error("snapshot is neither old nor new")
					return
				}
			}
		}()
	}
	if err := s.Reload(path); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if _, ok := s.Current().Device("kp-2"); !ok {
		t.Fatal("reload did not take effect")
	}
	if NewStore(nil).Current() == nil {
		t.Fatal("NewStore(nil) has a nil snapshot")
	}
}
