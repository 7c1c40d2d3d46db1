package registry_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/semko/semko/fleet/registry"
)

// BenchmarkPlacement looks devices up in a registry of national size
// (20,000 devices), as ingest does for every message.
func BenchmarkPlacement(b *testing.B) {
	const devices = 20000
	var sb strings.Builder
	sb.WriteString("organisations:\n  - id: org-1\n    timezone: Europe/Sofia\n    sites:\n")
	for s := range devices / 40 {
		fmt.Fprintf(&sb, "      - id: site-%d\n        counters:\n", s)
		for c := range 40 {
			id := s*40 + c
			fmt.Fprintf(&sb, "          - {id: c-%d, device: kp-%05d, service: passport}\n", id, id)
		}
	}
	sb.WriteString("devices:\n")
	for d := range devices {
		fmt.Fprintf(&sb, "  - {id: kp-%05d, secret_hash: \"sha256$00$%064d\"}\n", d, 0)
	}
	sb.WriteString("services:\n  - {id: passport}\n")
	reg, err := registry.Parse(strings.NewReader(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("kp-%05d", (i*7919)%devices)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := reg.Placement(ids[i%len(ids)]); !ok {
				b.Error("device not found")
				return
			}
			i++
		}
	})
}
