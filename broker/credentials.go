package broker

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/semko/semko/protocol"
)

// Role decides what an authenticated client may do. The zero Role is invalid
// so that a credential with a forgotten role grants nothing.
type Role int

const (
	// RoleDevice is an edge agent: it publishes only upstream kinds under its
	// own device id and subscribes only to its own downstream topics. Its
	// username and MQTT client id are both the device id.
	RoleDevice Role = iota + 1
	// RoleBackend may publish and subscribe anything under protocol.Root.
	RoleBackend
	// RoleObserver may only subscribe to the alert notices under
	// protocol.Root (technicians' apps); its sessions end with their
	// connection.
	RoleObserver
)

var roleNames = map[Role]string{RoleDevice: "device", RoleBackend: "backend", RoleObserver: "observer"}

// String returns "device", "backend" or "observer".
func (r Role) String() string {
	if s, ok := roleNames[r]; ok {
		return s
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// MarshalText renders the role's name, so configuration files can spell it.
func (r Role) MarshalText() ([]byte, error) {
	if _, ok := roleNames[r]; !ok {
		return nil, fmt.Errorf("%w: %d", ErrRole, int(r))
	}
	return []byte(r.String()), nil
}

// UnmarshalText parses "device", "backend" or "observer".
func (r *Role) UnmarshalText(text []byte) error {
	for role, name := range roleNames {
		if strings.EqualFold(string(text), name) {
			*r = role
			return nil
		}
	}
	return fmt.Errorf("%w: %q", ErrRole, text)
}

// Credential is one account allowed to connect. For a device, Username is
// the device id. Hash comes from HashSecret (or bcrypt for passwords typed by
// people); the secret itself is never stored.
type Credential struct {
	Username string
	Hash     string
	Role     Role
	// Orgs and Sites scope an observer: when either is set, it may
	// subscribe only to the alert notices of those organisations and
	// sites (semko/v1/alerts/<org>/... or .../<org>/<site>/...), so a
	// bank's app never receives a municipality's alerts. Empty: all.
	Orgs  []string `yaml:"orgs,omitempty"`
	Sites []string `yaml:"sites,omitempty"`
}

// scoped reports whether an observer is limited to some organisations or
// sites.
func (c Credential) scoped() bool { return len(c.Orgs) > 0 || len(c.Sites) > 0 }

// Errors returned by NewCredentials and Replace.
var (
	// ErrRole means a credential has no known role.
	ErrRole = errors.New("unknown role")
	// ErrCredential means a credential list is unusable: an empty or
	// duplicated username, a device username that is not a valid device id,
	// or a malformed hash.
	ErrCredential = errors.New("invalid credential")
)

// Credentials is the set of accounts the broker accepts. It is safe for
// concurrent use; Replace swaps the whole set atomically, so a registry change
// takes effect for the next connection and the next ACL check of every
// connected client, without a restart.
type Credentials struct {
	set atomic.Pointer[map[string]Credential]

	mu      sync.Mutex
	changed chan struct{} // closed by the next Replace; nil until asked for
}

// NewCredentials validates list and returns the set.
func NewCredentials(list []Credential) (*Credentials, error) {
	c := new(Credentials)
	if err := c.Replace(list); err != nil {
		return nil, err
	}
	return c, nil
}

// Replace validates list and, if it is valid, swaps it in as a whole. On
// error the previous set stays in force.
func (c *Credentials) Replace(list []Credential) error {
	m := make(map[string]Credential, len(list))
	for i, cr := range list {
		if err := validateCredential(cr); err != nil {
			return fmt.Errorf("credential %d: %w", i, err)
		}
		if _, dup := m[cr.Username]; dup {
			return fmt.Errorf("credential %d: %w: duplicate username %q", i, ErrCredential, cr.Username)
		}
		m[cr.Username] = cr
	}
	c.set.Store(&m)
	c.mu.Lock()
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
	c.mu.Unlock()
	return nil
}

// Changed returns a channel closed by the next successful Replace. The
// broker watches it to end sessions whose account was removed or whose
// secret or role changed.
func (c *Credentials) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	return c.changed
}

// Len returns the number of accounts.
func (c *Credentials) Len() int {
	if c == nil {
		return 0
	}
	if m := c.set.Load(); m != nil {
		return len(*m)
	}
	return 0
}

func (c *Credentials) lookup(username string) (Credential, bool) {
	if c == nil {
		return Credential{}, false
	}
	m := c.set.Load()
	if m == nil {
		return Credential{}, false
	}
	cr, ok := (*m)[username]
	return cr, ok
}

// owner returns the account clientID belongs to: the account named exactly
// so, else the one whose name is the longest prefix of clientID that ends
// before a '-'. So "semko-backend-2" belongs to semko-backend if that
// account exists (and never to an account named "semko"), and a device id
// to its device. An id no account owns may not be used at all.
func (c *Credentials) owner(clientID string) (Credential, bool) {
	if len(clientID) > maxClientIDLen {
		return Credential{}, false
	}
	for id := clientID; id != ""; {
		if cr, ok := c.lookup(id); ok {
			return cr, true
		}
		i := strings.LastIndexByte(id, '-')
		if i < 0 {
			break
		}
		id = id[:i]
	}
	return Credential{}, false
}

func validateCredential(cr Credential) error {
	if _, ok := roleNames[cr.Role]; !ok {
		return fmt.Errorf("%w: %d for %q", ErrRole, int(cr.Role), cr.Username)
	}
	if cr.Username == "" {
		return fmt.Errorf("%w: empty username", ErrCredential)
	}
	if cr.Role == RoleDevice {
		if err := protocol.ValidateDeviceID(cr.Username); err != nil {
			return fmt.Errorf("%w: %w", ErrCredential, err)
		}
	}
	if err := checkHash(cr.Hash); err != nil {
		return fmt.Errorf("%w: user %q: %w", ErrCredential, cr.Username, err)
	}
	return nil
}

// Lookup returns the account named username. Brokers outside this package
// (the NATS auth callout of a clustered deployment, backend/natsauth) check
// the same accounts as the embedded broker with it.
func (c *Credentials) Lookup(username string) (Credential, bool) { return c.lookup(username) }

// Owner returns the account an MQTT client id belongs to, by the rule the
// embedded broker enforces (see owner): a device's client id is its device
// id, a backend's or observer's its username or username-<suffix>.
func (c *Credentials) Owner(clientID string) (Credential, bool) { return c.owner(clientID) }
