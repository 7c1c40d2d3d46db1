package registry

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzParse checks that no fleet file crashes the parser, every failure is
// ErrInvalidFleet, and every accepted fleet answers consistently.
func FuzzParse(f *testing.F) {
	f.Add(base)
	f.Add(withConfig)
	if b, err := os.ReadFile(examplePath); err == nil {
		f.Add(string(b))
	}
	f.Add("organisations: [{id: a, timezone: UTC, sites: [{id: s, counters: [{id: c, device: d}]}]}]\ndevices: [{id: d, secret_hash: x}]")
	f.Fuzz(func(t *testing.T, src string) {
		r, err := Parse(strings.NewReader(src))
		if err != nil {
			if !errors.Is(err, ErrInvalidFleet) {
				t.Fatalf("error not ErrInvalidFleet: %v", err)
			}
			return
		}
		for _, c := range r.Counters() {
			if c.Device == "" {
				continue
			}
			p, ok := r.Placement(c.Device)
			if !ok || p.Counter != c.ID {
				t.Fatalf("counter %s: device %s placed at %+v %v", c.ID, c.Device, p, ok)
			}
		}
		for _, d := range r.Devices() {
			if _, ok := r.Device(d.ID); !ok {
				t.Fatalf("device %s not found", d.ID)
			}
		}
	})
}
