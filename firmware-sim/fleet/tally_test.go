package fleet

import (
	"testing"
	"time"
)

func TestTallyCountsAndLastMinute(t *testing.T) {
	m := Generate(Spec{Seed: 3, Orgs: 1, SitesPerOrg: 2, CountersPerSite: 1})
	now := time.Unix(1_800_000_000, 0)
	tl := newTally(m, func() time.Time { return now })
	a, b := m.Devices[0], m.Devices[1]

	tl.activation(a.ID)
	tl.vote(a.ID, 5)
	tl.activation(b.ID)
	tl.vote(b.ID, 1)
	tl.invalid(b.ID)
	now = now.Add(30 * time.Second)
	tl.activation(a.ID)
	tl.vote(a.ID, 4)

	tests := []struct {
		name string
		got  Counts
		want Counts
	}{
		{"device a", tl.Device(a.ID), Counts{Activations: 2, Votes: 2, Scores: [5]int{0, 0, 0, 1, 1}}},
		{"site b", tl.Site(b.Site), Counts{Activations: 1, Votes: 1, Scores: [5]int{1, 0, 0, 0, 0}, Invalid: 1}},
		{"total", tl.Total(), Counts{Activations: 3, Votes: 3, Scores: [5]int{1, 0, 0, 1, 1}, Invalid: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %+v, want %+v", tt.got, tt.want)
			}
		})
	}
	if s := tl.Snapshot(); s.ActivationsLastMinute != 3 || s.VotesLastMinute != 3 || s.Satisfied < 0.66 || s.Satisfied > 0.67 {
		t.Fatalf("snapshot = %+v", s)
	}
	now = now.Add(45 * time.Second) // the first second has left the minute
	if s := tl.Snapshot(); s.ActivationsLastMinute != 1 || s.VotesLastMinute != 1 {
		t.Fatalf("snapshot 75s later = %+v", s)
	}
	now = now.Add(time.Hour)
	if s := tl.Snapshot(); s.ActivationsLastMinute != 0 || s.Total.Activations != 3 {
		t.Fatalf("snapshot an hour later = %+v", s)
	}
}
