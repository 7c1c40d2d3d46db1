// Package registry holds the fleet: organisations, their sites and counters,
// the keypads placed at those counters, operators and services. It reads the
// fleet file (YAML), checks it as a whole, and answers lookups from an
// immutable snapshot. A Store swaps snapshots atomically, so support can edit
// the fleet file and reload it without restarting the backend.
package registry

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/semko/semko/fleet/devconfig"
	"github.com/semko/semko/protocol"
)

// Errors of this package. Match them with errors.Is.
var (
	// ErrInvalidFleet wraps every problem found in a fleet file.
	ErrInvalidFleet = errors.New("invalid fleet file")
	// ErrUnknownDevice is returned (wrapped) by callers that look up a device
	// the fleet does not know, so that HTTP and MQTT layers can tell "no such
	// device" from other failures.
	ErrUnknownDevice = errors.New("unknown device")
)

// Placement is where a device stands: the tags every InfluxDB point of that
// device carries. Operator and Service are the counter's defaults, used when
// a message names none. A known device that is not placed at any counter has
// an empty placement.
type Placement struct {
	Org      string `json:"org,omitempty"`
	Site     string `json:"site,omitempty"`
	Counter  string `json:"counter,omitempty"`
	Operator string `json:"operator,omitempty"`
	Service  string `json:"service,omitempty"`
}

// Responsible is the person told about negative ratings at a site or counter.
type Responsible struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	Lang  string `json:"lang,omitempty"`
}

// Organisation is a customer: a municipality, a utility, a bank, a shop chain.
type Organisation struct {
	ID       string
	Name     string
	Timezone string
	Location *time.Location
	Config   *devconfig.Override // nil when the organisation overrides nothing
}

// Site is one service point of an organisation. Timezone is the effective
// one: the site's own, or the organisation's.
type Site struct {
	ID          string
	Org         string
	Name        string
	Timezone    string
	Location    *time.Location
	Responsible Responsible
	Config      *devconfig.Override // the site's own override, nil for none
}

// Counter is one service desk. Responsible is the effective person: the
// counter's own, or the site's.
type Counter struct {
	ID          string
	Org         string
	Site        string
	Name        string
	Device      string // empty when no keypad is installed yet
	Operator    string // default operator, may be empty
	Service     string // default service, may be empty
	Responsible Responsible
}

// Device is one keypad. Counter is empty while it is not installed anywhere.
type Device struct {
	ID         string
	SecretHash string
	Model      string
	Serial     string
	FW         string
	Installed  time.Time // zero when unknown; UTC midnight of the date
	Counter    string
	Config     *devconfig.Override // the device's own override, nil for none
}

// Operator is a person serving customers.
type Operator struct {
	ID   string
	Name string
	Org  string
}

// Service is a kind of service offered at counters.
type Service struct {
	ID   string
	Name string
}

// Credential is what the broker needs to authenticate one device.
type Credential struct {
	Device string
	Hash   string
}

// Registry is one validated snapshot of the fleet. It is never modified
// after Parse returns it, so any number of goroutines may read it. The zero
// value is an empty fleet.
type Registry struct {
	orgs      []Organisation
	sites     []Site
	counters  []Counter
	devices   []Device
	operators []Operator
	services  []Service

	deviceByID  map[string]int
	counterByID map[string]int
	siteByID    map[string]int
	orgByID     map[string]int
	opByID      map[string]int
	svcByID     map[string]int
}

// Placement returns where device stands. ok is false for a device the fleet
// does not know; a known but uninstalled device has an empty placement.
func (r *Registry) Placement(device string) (p Placement, ok bool) {
	d, ok := r.Device(device)
	if !ok {
		return Placement{}, false
	}
	if d.Counter == "" {
		return Placement{}, true
	}
	c := r.counters[r.counterByID[d.Counter]]
	return Placement{Org: c.Org, Site: c.Site, Counter: c.ID, Operator: c.Operator, Service: c.Service}, true
}

// Device looks a device up by id.
func (r *Registry) Device(id string) (Device, bool) { return lookup(r.devices, r.deviceByID, id) }

// Counter looks a counter up by id.
func (r *Registry) Counter(id string) (Counter, bool) { return lookup(r.counters, r.counterByID, id) }

// Site looks a site up by id.
func (r *Registry) Site(id string) (Site, bool) { return lookup(r.sites, r.siteByID, id) }

// Organisation looks an organisation up by id.
func (r *Registry) Organisation(id string) (Organisation, bool) { return lookup(r.orgs, r.orgByID, id) }

// Operator looks an operator up by id.
func (r *Registry) Operator(id string) (Operator, bool) { return lookup(r.operators, r.opByID, id) }

// Service looks a service up by id.
func (r *Registry) Service(id string) (Service, bool) { return lookup(r.services, r.svcByID, id) }

// Devices returns every device, ordered by id. The slice is the caller's.
func (r *Registry) Devices() []Device { return clone(r.devices) }

// Organisations returns every organisation, ordered by id.
func (r *Registry) Organisations() []Organisation { return clone(r.orgs) }

// Sites returns every site, ordered by id.
func (r *Registry) Sites() []Site { return clone(r.sites) }

// Counters returns every counter, ordered by id.
func (r *Registry) Counters() []Counter { return clone(r.counters) }

// Operators returns every operator, ordered by id.
func (r *Registry) Operators() []Operator { return clone(r.operators) }

// Services returns every service, ordered by id.
func (r *Registry) Services() []Service { return clone(r.services) }

// Len returns the number of devices.
func (r *Registry) Len() int {
	if r == nil {
		return 0
	}
	return len(r.devices)
}

// Credentials returns the secret hash of every device, ordered by device id.
func (r *Registry) Credentials() []Credential {
	out := make([]Credential, len(r.devices))
	for i, d := range r.devices {
		out[i] = Credential{Device: d.ID, Hash: d.SecretHash}
	}
	return out
}

func lookup[T any](items []T, index map[string]int, id string) (T, bool) {
	i, ok := index[id] // a nil map (zero Registry) answers not found
	if !ok {
		var zero T
		return zero, false
	}
	return items[i], true
}

func clone[T any](s []T) []T { return append([]T(nil), s...) }

// indexByID sorts items by id and returns the position of each id.
func indexByID[T any](items []T, id func(*T) string) map[string]int {
	sort.Slice(items, func(i, j int) bool { return id(&items[i]) < id(&items[j]) })
	m := make(map[string]int, len(items))
	for i := range items {
		m[id(&items[i])] = i
	}
	return m
}

// Overrides returns the configuration overrides that apply to device, from
// the most general: its organisation's, its site's and its own (each nil
// when absent; org and site are nil for a device at no counter).
func (r *Registry) Overrides(device string) (org, site, dev *devconfig.Override, ok bool) {
	d, ok := r.Device(device)
	if !ok {
		return nil, nil, nil, false
	}
	if c, placed := r.Counter(d.Counter); placed {
		if o, found := r.Organisation(c.Org); found {
			org = o.Config
		}
		if s, found := r.Site(c.Site); found {
			site = s.Config
		}
	}
	return org, site, d.Config, true
}

// Config resolves the configuration device should run (see devconfig for
// the precedence). The error wraps ErrUnknownDevice or
// devconfig.ErrInvalidOverride.
func (r *Registry) Config(device string) (protocol.Config, error) {
	org, site, dev, ok := r.Overrides(device)
	if !ok {
		return protocol.Config{}, fmt.Errorf("%w: %q", ErrUnknownDevice, device)
	}
	return devconfig.Resolve(org, site, dev)
}

// Managed reports whether any level (organisation, site, device) declares
// a config override for device. The backend pushes configuration only to
// managed devices: the others keep the edge agent's own defaults, as they
// did before remote configuration existed, so turning it on for one
// organisation changes nothing elsewhere.
func (r *Registry) Managed(device string) bool {
	org, site, dev, ok := r.Overrides(device)
	return ok && !(org.IsZero() && site.IsZero() && dev.IsZero())
}

// Configs resolves the configuration of every managed device (see
// Managed). Build has checked that each resolves.
func (r *Registry) Configs() map[string]protocol.Config {
	out := make(map[string]protocol.Config, len(r.devices))
	for _, d := range r.devices {
		if !r.Managed(d.ID) {
			continue
		}
		if c, err := r.Config(d.ID); err == nil {
			out[d.ID] = c
		}
	}
	return out
}

// DevicesAt counts the counters of site that have a device installed.
func (r *Registry) DevicesAt(site string) int {
	n := 0
	for _, c := range r.counters {
		if c.Site == site && c.Device != "" {
			n++
		}
	}
	return n
}
