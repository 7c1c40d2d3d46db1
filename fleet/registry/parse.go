package registry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/semko/semko/fleet/devconfig"
	"github.com/semko/semko/protocol"
)

// MaxFileSize bounds the fleet file. Tens of thousands of devices fit in a
// few megabytes; anything far larger is a mistake.
const MaxFileSize = 64 << 20

// File is the fleet file's shape: what Parse reads and what a fleet
// database exports. Field names are the contract with firmware-sim, which
// writes fleet files; README.md documents each one. Build turns a File into
// a validated Registry.
type File struct {
	Organisations []FileOrg      `yaml:"organisations" json:"organisations"`
	Devices       []FileDevice   `yaml:"devices" json:"devices"`
	Operators     []FileOperator `yaml:"operators,omitempty" json:"operators,omitempty"`
	Services      []FileService  `yaml:"services,omitempty" json:"services,omitempty"`
}

// FileOrg is one organisation with its sites.
type FileOrg struct {
	ID       string              `yaml:"id" json:"id"`
	Name     string              `yaml:"name,omitempty" json:"name,omitempty"`
	Timezone string              `yaml:"timezone" json:"timezone"`
	Config   *devconfig.Override `yaml:"config,omitempty" json:"config,omitempty"`
	Sites    []FileSite          `yaml:"sites,omitempty" json:"sites,omitempty"`
}

// FileSite is one site with its counters.
type FileSite struct {
	ID          string              `yaml:"id" json:"id"`
	Name        string              `yaml:"name,omitempty" json:"name,omitempty"`
	Timezone    string              `yaml:"timezone,omitempty" json:"timezone,omitempty"`
	Responsible *Responsible        `yaml:"responsible,omitempty" json:"responsible,omitempty"`
	Config      *devconfig.Override `yaml:"config,omitempty" json:"config,omitempty"`
	Counters    []FileCounter       `yaml:"counters,omitempty" json:"counters,omitempty"`
}

// FileCounter is one counter and the keypad installed there.
type FileCounter struct {
	ID          string       `yaml:"id" json:"id"`
	Name        string       `yaml:"name,omitempty" json:"name,omitempty"`
	Device      string       `yaml:"device,omitempty" json:"device,omitempty"`
	Operator    string       `yaml:"operator,omitempty" json:"operator,omitempty"`
	Service     string       `yaml:"service,omitempty" json:"service,omitempty"`
	Responsible *Responsible `yaml:"responsible,omitempty" json:"responsible,omitempty"`
}

// FileDevice is one keypad.
type FileDevice struct {
	ID         string              `yaml:"id" json:"id"`
	SecretHash string              `yaml:"secret_hash" json:"secret_hash"`
	Model      string              `yaml:"model,omitempty" json:"model,omitempty"`
	Serial     string              `yaml:"serial,omitempty" json:"serial,omitempty"`
	FW         string              `yaml:"fw,omitempty" json:"fw,omitempty"`
	Installed  Date                `yaml:"installed,omitempty" json:"installed,omitzero"`
	Config     *devconfig.Override `yaml:"config,omitempty" json:"config,omitempty"`
}

// FileOperator is one operator.
type FileOperator struct {
	ID   string `yaml:"id" json:"id"`
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	Org  string `yaml:"org" json:"org"`
}

// FileService is one service.
type FileService struct {
	ID   string `yaml:"id" json:"id"`
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
}

// Date reads "2026-01-15" whether YAML resolved it as a timestamp or the
// author quoted it as a string.
type Date struct{ time.Time }

func (d *Date) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: installed must be a date YYYY-MM-DD", n.Line)
	}
	t, err := time.Parse(time.DateOnly, n.Value)
	if err != nil {
		return fmt.Errorf("line %d: installed %q is not a date YYYY-MM-DD", n.Line, n.Value)
	}
	d.Time = t
	return nil
}

// MarshalYAML writes the date as a plain YYYY-MM-DD, which YAML reads as a
// date, so an exported or generated file reads back.
func (d Date) MarshalYAML() (any, error) {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!timestamp", Value: d.Format(time.DateOnly)}, nil
}

// Marshal renders f as a fleet file that Parse reads back.
func (f File) Marshal() ([]byte, error) {
	b, err := yaml.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("marshal fleet file: %w", err)
	}
	return b, nil
}

// Load reads and validates the fleet file at path.
func Load(path string) (*Registry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open fleet file: %w", err)
	}
	defer f.Close()
	r, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Parse reads a fleet file and validates it as a whole. Unknown fields are
// errors (a misspelt key would otherwise silently drop data). All problems
// found are reported together, each wrapping ErrInvalidFleet.
func Parse(r io.Reader) (*Registry, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read fleet file: %w", err)
	}
	f, err := ParseFile(data)
	if err != nil {
		return nil, err
	}
	return Build(f)
}

// ParseFile decodes a fleet file strictly and checks it as Parse does, but
// returns its declarations rather than a snapshot: a fleet database applies
// them to what it holds.
func ParseFile(data []byte) (File, error) {
	var ff File
	if len(data) > MaxFileSize {
		return ff, fmt.Errorf("%w: larger than %d bytes", ErrInvalidFleet, MaxFileSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&ff); err != nil && !errors.Is(err, io.EOF) {
		return ff, fmt.Errorf("%w: %w", ErrInvalidFleet, err)
	}
	// A second document would be ignored silently: refuse it instead.
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return ff, fmt.Errorf("%w: more than one YAML document", ErrInvalidFleet)
	}
	if _, err := Build(ff); err != nil {
		return ff, err
	}
	return ff, nil
}

// problems collects every validation failure with the path to the entry.
type problems []error

func (p *problems) add(where, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%w: %s: %s", ErrInvalidFleet, where, fmt.Sprintf(format, args...)))
}

func (p *problems) id(where, id string) bool {
	if err := protocol.ValidateDeviceID(id); err != nil {
		// ValidateDeviceID names the rule; "device id" would mislead for
		// other kinds, so say only what is wrong.
		msg := strings.TrimPrefix(err.Error(), protocol.ErrDeviceID.Error()+": ")
		p.add(where, "bad id: %s (ids are 1..%d of [A-Za-z0-9_.-])", msg, protocol.MaxDeviceIDLen)
		return false
	}
	return true
}

// config checks one level's override on its own, over the defaults.
func (p *problems) config(where string, o *devconfig.Override) {
	if err := devconfig.Check(o); err != nil {
		p.add(where, "config: %v", err)
	}
}

func (p *problems) unique(seen map[string]string, where, kind, id string) {
	if first, dup := seen[id]; dup {
		p.add(where, "duplicate %s id %q (first at %s)", kind, id, first)
		return
	}
	seen[id] = where
}

func (p *problems) zone(where, name string) *time.Location {
	// time.LoadLocation also accepts "" (UTC) and "Local": neither is an
	// IANA zone a site can be in.
	if name == "" || name == "Local" {
		p.add(where, "timezone %q is not an IANA time zone", name)
		return nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		p.add(where, "timezone %q is not an IANA time zone", name)
		return nil
	}
	return loc
}

var (
	sha256Hash = regexp.MustCompile(`^sha256\$(?:[0-9a-fA-F]{2}){1,64}\$[0-9a-fA-F]{64}$`)
	bcryptHash = regexp.MustCompile(`^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$`)
)

// Build validates a fleet as a whole and returns its snapshot. All problems
// found are reported together, each wrapping ErrInvalidFleet.
func Build(ff File) (*Registry, error) {
	var p problems
	r := &Registry{}

	devWhere := map[string]string{}
	for i, d := range ff.Devices {
		where := fmt.Sprintf("devices[%d]", i)
		if d.ID != "" {
			where += " (" + d.ID + ")"
		}
		if p.id(where, d.ID) {
			p.unique(devWhere, where, "device", d.ID)
		}
		switch {
		case d.SecretHash == "":
			p.add(where, "secret_hash missing")
		case !sha256Hash.MatchString(d.SecretHash) && !bcryptHash.MatchString(d.SecretHash):
			// Never echo the value: it is a credential, even if hashed.
			p.add(where, "secret_hash is neither sha256$<salt hex>$<hash hex> nor bcrypt")
		}
		p.config(where, d.Config)
		r.devices = append(r.devices, Device{
			ID: d.ID, SecretHash: d.SecretHash, Model: d.Model, Serial: d.Serial, FW: d.FW,
			Installed: d.Installed.Time, Config: d.Config,
		})
	}

	orgWhere := map[string]string{}
	for i, o := range ff.Organisations {
		where := fmt.Sprintf("organisations[%d]", i)
		if o.ID != "" {
			where += " (" + o.ID + ")"
		}
		if p.id(where, o.ID) {
			p.unique(orgWhere, where, "organisation", o.ID)
		}
		loc := p.zone(where, o.Timezone)
		p.config(where, o.Config)
		r.orgs = append(r.orgs, Organisation{ID: o.ID, Name: o.Name, Timezone: o.Timezone, Location: loc, Config: o.Config})
	}

	opWhere := map[string]string{}
	opOrg := map[string]string{}
	for i, o := range ff.Operators {
		where := fmt.Sprintf("operators[%d]", i)
		if o.ID != "" {
			where += " (" + o.ID + ")"
		}
		if p.id(where, o.ID) {
			p.unique(opWhere, where, "operator", o.ID)
		}
		if _, ok := orgWhere[o.Org]; !ok {
			p.add(where, "org %q is not an organisation", o.Org)
		}
		opOrg[o.ID] = o.Org
		r.operators = append(r.operators, Operator(o))
	}

	svcWhere := map[string]string{}
	for i, s := range ff.Services {
		where := fmt.Sprintf("services[%d]", i)
		if s.ID != "" {
			where += " (" + s.ID + ")"
		}
		if p.id(where, s.ID) {
			p.unique(svcWhere, where, "service", s.ID)
		}
		r.services = append(r.services, Service(s))
	}

	siteWhere := map[string]string{}
	counterWhere := map[string]string{}
	deviceAt := map[string]string{} // device id -> where it is placed
	for i, o := range ff.Organisations {
		for j, s := range o.Sites {
			where := fmt.Sprintf("organisations[%d].sites[%d]", i, j)
			if s.ID != "" {
				where += " (" + s.ID + ")"
			}
			if p.id(where, s.ID) {
				p.unique(siteWhere, where, "site", s.ID)
			}
			p.config(where, s.Config)
			site := Site{ID: s.ID, Org: o.ID, Name: s.Name, Timezone: o.Timezone, Config: s.Config}
			if s.Timezone != "" {
				site.Timezone = s.Timezone
				site.Location = p.zone(where, s.Timezone)
			} else {
				site.Location = r.orgs[i].Location
			}
			if s.Responsible != nil {
				site.Responsible = *s.Responsible
			}
			r.sites = append(r.sites, site)

			for k, c := range s.Counters {
				where := fmt.Sprintf("organisations[%d].sites[%d].counters[%d]", i, j, k)
				if c.ID != "" {
					where += " (" + c.ID + ")"
				}
				if p.id(where, c.ID) {
					p.unique(counterWhere, where, "counter", c.ID)
				}
				counter := Counter{
					ID: c.ID, Org: o.ID, Site: s.ID, Name: c.Name, Device: c.Device,
					Operator: c.Operator, Service: c.Service, Responsible: site.Responsible,
				}
				if c.Responsible != nil {
					counter.Responsible = *c.Responsible
				}
				if c.Device != "" {
					if _, ok := devWhere[c.Device]; !ok {
						p.add(where, "device %q is not in devices", c.Device)
					} else if other, twice := deviceAt[c.Device]; twice {
						p.add(where, "device %q is already at %s", c.Device, other)
					} else {
						deviceAt[c.Device] = where
					}
				}
				if c.Operator != "" {
					if _, ok := opWhere[c.Operator]; !ok {
						p.add(where, "operator %q is not in operators", c.Operator)
					} else if org := opOrg[c.Operator]; org != o.ID {
						p.add(where, "operator %q belongs to organisation %q, not %q", c.Operator, org, o.ID)
					}
				}
				if c.Service != "" {
					if _, ok := svcWhere[c.Service]; !ok {
						p.add(where, "service %q is not in services", c.Service)
					}
				}
				r.counters = append(r.counters, counter)
			}
		}
	}
	if len(p) > 0 {
		return nil, errors.Join(p...)
	}

	r.orgByID = indexByID(r.orgs, func(o *Organisation) string { return o.ID })
	r.siteByID = indexByID(r.sites, func(s *Site) string { return s.ID })
	r.counterByID = indexByID(r.counters, func(c *Counter) string { return c.ID })
	r.opByID = indexByID(r.operators, func(o *Operator) string { return o.ID })
	r.svcByID = indexByID(r.services, func(s *Service) string { return s.ID })
	r.deviceByID = indexByID(r.devices, func(d *Device) string { return d.ID })
	for _, c := range r.counters {
		if c.Device != "" {
			r.devices[r.deviceByID[c.Device]].Counter = c.ID
		}
	}
	// Each level's override is fine on its own; their combination must be
	// too (a site's panel lang may need a text only the org declares).
	for _, d := range r.devices {
		if _, err := r.Config(d.ID); err != nil {
			p.add(fmt.Sprintf("devices (%s)", d.ID), "effective config: %v", err)
		}
	}
	if len(p) > 0 {
		return nil, errors.Join(p...)
	}
	return r, nil
}
