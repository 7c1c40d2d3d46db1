package fleet

import (
	"maps"
	"sync"
	"time"
)

// Counts is what a fleet run did at one device, one site or in total.
// Votes and Scores count valid votes only: presses the keypad saw taken
// inside an open window. Invalid counts stray presses taken while surely no
// window was open (the edge stores them with valid=false, reason
// no_activation). Unsure counts presses and activations whose outcome the
// simulator cannot know (a press not taken in time, an activation call that
// failed): an exact comparison with the backend needs Unsure == 0.
type Counts struct {
	Activations int
	Votes       int
	Scores      [5]int // valid votes by key 1..5
	Invalid     int
	Unsure      int
}

// Satisfied is the share of valid votes scoring 4 or 5, 0 without votes.
func (c Counts) Satisfied() float64 {
	if c.Votes == 0 {
		return 0
	}
	return float64(c.Scores[3]+c.Scores[4]) / float64(c.Votes)
}

func (c *Counts) add(o Counts) {
	c.Activations += o.Activations
	c.Votes += o.Votes
	c.Invalid += o.Invalid
	c.Unsure += o.Unsure
	for i := range c.Scores {
		c.Scores[i] += o.Scores[i]
	}
}

// Snapshot is a moment's view of a running fleet, for a status line.
type Snapshot struct {
	Units, Connected int
	Total            Counts
	// Activations and valid votes in the last minute.
	ActivationsLastMinute, VotesLastMinute int
	// Satisfied is the share of valid votes scoring 4-5 so far.
	Satisfied float64
}

// Tally counts what a fleet run did. It is safe for concurrent use and may
// be read while the run goes on.
type Tally struct {
	now func() time.Time

	mu       sync.Mutex
	byDevice map[string]Counts
	siteOf   map[string]string // device -> site
	recent   [60]second        // ring of per-second counts for the last minute
	units    func() (units, connected int)
}

type second struct {
	unix        int64
	activations int
	votes       int
}

func newTally(m *Model, now func() time.Time) *Tally {
	t := &Tally{now: now, byDevice: map[string]Counts{}, siteOf: map[string]string{}}
	for _, d := range m.Devices {
		t.siteOf[d.ID] = d.Site
		t.byDevice[d.ID] = Counts{}
	}
	return t
}

func (t *Tally) record(device string, c Counts) {
	now := t.now().Unix()
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.byDevice[device]
	d.add(c)
	t.byDevice[device] = d
	s := &t.recent[now%int64(len(t.recent))]
	if s.unix != now {
		*s = second{unix: now}
	}
	s.activations += c.Activations
	s.votes += c.Votes
}

func (t *Tally) activation(device string) { t.record(device, Counts{Activations: 1}) }
func (t *Tally) unsure(device string)     { t.record(device, Counts{Unsure: 1}) }
func (t *Tally) invalid(device string)    { t.record(device, Counts{Invalid: 1}) }

func (t *Tally) vote(device string, key int) {
	c := Counts{Votes: 1}
	c.Scores[key-1] = 1
	t.record(device, c)
}

// Device returns the counts of one device.
func (t *Tally) Device(id string) Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byDevice[id]
}

// Devices returns the counts of every device of the model.
func (t *Tally) Devices() map[string]Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.byDevice)
}

// Sites returns the counts of every site of the model.
func (t *Tally) Sites() map[string]Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	sites := map[string]Counts{}
	for dev, c := range t.byDevice {
		s := sites[t.siteOf[dev]]
		s.add(c)
		sites[t.siteOf[dev]] = s
	}
	return sites
}

// Site returns the counts of one site.
func (t *Tally) Site(id string) Counts { return t.Sites()[id] }

// Total returns the counts of the whole fleet.
func (t *Tally) Total() Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	var total Counts
	for _, c := range t.byDevice {
		total.add(c)
	}
	return total
}

// Snapshot returns totals, connected units and the last minute's rates.
func (t *Tally) Snapshot() Snapshot {
	total := t.Total()
	now := t.now().Unix()
	t.mu.Lock()
	snap := Snapshot{Total: total, Satisfied: total.Satisfied()}
	for _, s := range t.recent {
		if s.unix > now-int64(len(t.recent)) && s.unix <= now {
			snap.ActivationsLastMinute += s.activations
			snap.VotesLastMinute += s.votes
		}
	}
	units := t.units
	t.mu.Unlock()
	if units != nil {
		snap.Units, snap.Connected = units()
	}
	return snap
}
