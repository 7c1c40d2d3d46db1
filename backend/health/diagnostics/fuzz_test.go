package diagnostics

import (
	"strings"
	"testing"
)

// FuzzCompareVersions checks the version order is an order: antisymmetric
// and reflexive, whatever units report as their firmware.
func FuzzCompareVersions(f *testing.F) {
	for _, s := range [][2]string{{"1.4.2", "1.10.0"}, {"v2", "2.0.0"}, {"1.5.0-rc1", "1.5.0"}, {"", "."}, {"18446744073709551616", "1"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if compareVersions(a, a) != 0 {
			t.Fatalf("%q != itself", a)
		}
		if ab, ba := compareVersions(a, b), compareVersions(b, a); ab != -ba {
			t.Fatalf("compare(%q,%q)=%d but compare(%q,%q)=%d", a, b, ab, b, a, ba)
		}
	})
}

// FuzzParseSchedule feeds arbitrary schedule strings from a config file:
// an error or a job definition, never a panic, and "off" alone means off.
func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"30s", "0 3 * * *", "off", "", "-1m", "* * *", "1h30m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		def, err := parseSchedule(spec)
		if err == nil && def == nil && strings.TrimSpace(spec) != scheduleOff {
			t.Fatalf("%q disabled the check", spec)
		}
	})
}
