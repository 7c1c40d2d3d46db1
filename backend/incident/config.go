package incident

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/jonboulle/clockwork"
)

// Department is one row of the table of who handles incidents: the
// department, its responsible role, the accounts holding it, the maximum
// time (working hours on the site's calendar) to pass an incident on and
// to report back, and the channel it passes information by.
type Department struct {
	Name string `yaml:"name" json:"name"` // id: "retail", "call_centre_call"
	// Title is the display name ("Retail shop").
	Title string `yaml:"title" json:"title"`
	// Role is the responsible role in the organisation's words ("service
	// manager or shop manager").
	Role string `yaml:"role" json:"role"`
	// Accounts hold the role: an incident is passed on to one of them.
	// Empty: any account may take it.
	Accounts []string `yaml:"accounts" json:"accounts,omitempty"`
	// MaxTime is working time; default 3h. A call-centre call, "at once by
	// phone", is a few minutes.
	MaxTime time.Duration `yaml:"max_time" json:"max_time"`
	// Channel is how the department passes information: email,
	// document_system, phone.
	Channel string `yaml:"channel" json:"channel"`
}

// TypeConfig adds an incident type or sets how many documents one needs.
type TypeConfig struct {
	Name string `yaml:"name" json:"name"`
	// Documents is how many attachments must be there before the incident
	// is passed on (a receipt, a claim form).
	Documents int `yaml:"documents" json:"documents"`
}

// Config is the `incidents:` section of the backend configuration.
type Config struct {
	Disabled bool `yaml:"disabled"`
	// Store is the SQLite file; default <data_dir>/incidents.db. Files are
	// kept under <data_dir>/incident-files unless FilesDir says otherwise.
	Store    string `yaml:"store"`
	FilesDir string `yaml:"files_dir"`
	// Departments: default DefaultDepartments.
	Departments []Department `yaml:"departments"`
	// Types adds types to BuiltinTypes or changes their document counts.
	Types []TypeConfig `yaml:"types"`
	// MaxAttachment bounds one file (default 10 MiB); MaxAttachments the
	// files of one incident (default 10).
	MaxAttachment  int64 `yaml:"max_attachment"`
	MaxAttachments int   `yaml:"max_attachments"`
	// MinScanPixels is the least a scan's shorter side may have; default
	// 600 (an A4 page at about 70 dpi: legible). 0 keeps the default,
	// negative turns the check off.
	MinScanPixels int `yaml:"min_scan_pixels"`
	// RetainPersonal is how long the customer's name and contact are kept
	// after an incident is closed; default 180 days. They are then deleted
	// and the trail says so.
	RetainPersonal time.Duration `yaml:"retain_personal"`
	// DelayReasons are the reasons a late close may give; default
	// DefaultDelayReasons.
	DelayReasons []string `yaml:"delay_reasons"`
	// BaseURL is the console's address, for links in notices
	// ("https://semko.example.org"); the incident is at
	// <base>/incidents/<id>.
	BaseURL string `yaml:"base_url"`
	// CheckEvery is how often deadlines and retention are checked;
	// default 1m.
	CheckEvery time.Duration `yaml:"check_every"`
	// Email is the e-mail intake (see mailintake).
	Email EmailConfig `yaml:"email"`
	// Clock replaces the real clock when set: end-to-end tests move a
	// deadline past without waiting hours. Not configurable from YAML.
	Clock clockwork.Clock `yaml:"-"`
}

// EmailConfig is the e-mail intake: an SMTP listener whose messages to
// the configured addresses become incidents.
type EmailConfig struct {
	// Addr is the listener, e.g. "127.0.0.1:2525"; empty disables intake.
	Addr string `yaml:"addr"`
	// Domain is the server's name in its greeting.
	Domain string `yaml:"domain"`
	// Addresses map a recipient to where its incidents belong. A
	// plus-address ("cs+sofia-mall@example.org") picks the site after the
	// plus when the address without it is listed with an org only.
	Addresses []EmailAddress `yaml:"addresses"`
	// MaxMessage bounds one message (default 15 MiB), PerAddressPerHour
	// the messages accepted per sender address (default 20).
	MaxMessage        int64 `yaml:"max_message"`
	PerAddressPerHour int   `yaml:"per_address_per_hour"`
}

// EmailAddress routes one intake address.
type EmailAddress struct {
	Address    string `yaml:"address"`
	Org        string `yaml:"org"`
	Site       string `yaml:"site"`
	Department string `yaml:"department"`
	Type       Type   `yaml:"type"` // default poor_service
}

// DefaultDepartments follow the Customer Service practice the desk is
// modelled on.
var DefaultDepartments = []Department{
	{Name: "retail", Title: "Retail shop", Role: "service manager or shop manager (deputy)", MaxTime: 3 * time.Hour, Channel: "email"},
	{Name: "call_centre_email", Title: "Call centre (e-mail)", Role: "deputy head of department", MaxTime: 3 * time.Hour, Channel: "email"},
	{Name: "call_centre_call", Title: "Call centre (call)", Role: "operator of the current call", MaxTime: 15 * time.Minute, Channel: "phone"},
	{Name: "documents", Title: "Document management", Role: "head of the service", MaxTime: 3 * time.Hour, Channel: "document_system"},
	{Name: "service_centre", Title: "Service centre", Role: "head of the service centre", MaxTime: 3 * time.Hour, Channel: "email"},
	{Name: "services", Title: "Services (installation, IT)", Role: "head of the line", MaxTime: 3 * time.Hour, Channel: "email"},
	{Name: "other", Title: "Other", Role: "head of department", MaxTime: 3 * time.Hour, Channel: "email"},
}

// DefaultDelayReasons are the reasons for long service a late close picks.
var DefaultDelayReasons = []string{"waiting_for_customer", "waiting_for_supplier", "expertise", "staff_absent", "other"}

// defaultDocuments: a quality conflict needs the receipt or claim scanned.
var defaultDocuments = map[Type]int{TypeQuality: 1}

// Defaults.
const (
	DefaultMaxAttachment  = 10 << 20
	DefaultMaxAttachments = 10
	DefaultMinScanPixels  = 600
	DefaultRetainPersonal = 180 * 24 * time.Hour
	DefaultMaxTime        = 3 * time.Hour
	DefaultCheckEvery     = time.Minute
)

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// withDefaults fills zero values and checks the table.
func (c Config) withDefaults() (Config, error) {
	if len(c.Departments) == 0 {
		c.Departments = slices.Clone(DefaultDepartments)
	}
	seen := map[string]bool{}
	for i := range c.Departments {
		d := &c.Departments[i]
		if !idPattern.MatchString(d.Name) {
			return c, fmt.Errorf("incidents: department name %q: want lower-case letters, digits, _ . -", d.Name)
		}
		if seen[d.Name] {
			return c, fmt.Errorf("incidents: department %q named twice", d.Name)
		}
		seen[d.Name] = true
		if d.MaxTime < 0 {
			return c, fmt.Errorf("incidents: department %q: negative max_time", d.Name)
		}
		if d.MaxTime == 0 {
			d.MaxTime = DefaultMaxTime
		}
		if d.Title == "" {
			d.Title = d.Name
		}
	}
	for _, t := range c.Types {
		if !idPattern.MatchString(t.Name) || t.Documents < 0 {
			return c, fmt.Errorf("incidents: type %q: bad name or negative documents", t.Name)
		}
	}
	if c.MaxAttachment <= 0 {
		c.MaxAttachment = DefaultMaxAttachment
	}
	if c.MaxAttachments <= 0 {
		c.MaxAttachments = DefaultMaxAttachments
	}
	if c.MinScanPixels == 0 {
		c.MinScanPixels = DefaultMinScanPixels
	}
	if c.RetainPersonal <= 0 {
		c.RetainPersonal = DefaultRetainPersonal
	}
	if len(c.DelayReasons) == 0 {
		c.DelayReasons = DefaultDelayReasons
	}
	if c.CheckEvery <= 0 {
		c.CheckEvery = DefaultCheckEvery
	}
	return c, nil
}

// AllTypes lists the known types: the built-in ones, then the configured.
func (c Config) AllTypes() []Type {
	out := slices.Clone(BuiltinTypes)
	for _, t := range c.Types {
		if !slices.Contains(out, Type(t.Name)) {
			out = append(out, Type(t.Name))
		}
	}
	return out
}

// documents is how many attachments t needs before it is passed on.
func (c Config) documents(t Type) int {
	for _, tc := range c.Types {
		if Type(tc.Name) == t {
			return tc.Documents
		}
	}
	return defaultDocuments[t]
}

// DefaultDepartment is where an incident opened from a notice (a
// negative vote, an NPS detractor) goes first: the retail shop when the
// table has it, else its first row. The person registering may change it.
func (c Config) DefaultDepartment() string {
	if _, ok := c.Department("retail"); ok {
		return "retail"
	}
	if len(c.Departments) == 0 {
		return ""
	}
	return c.Departments[0].Name
}

// Department returns the named row.
func (c Config) Department(name string) (Department, bool) {
	for _, d := range c.Departments {
		if d.Name == name {
			return d, true
		}
	}
	return Department{}, false
}
