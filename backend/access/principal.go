// Package access says who is asking and what they may reach: a Principal
// (an account or token with a role and a scope) travels in the request's
// context, and every handler that lists or changes something of an
// organisation asks the principal's Scope first. Out of scope answers 404,
// never 403: an account never learns that another organisation's things
// exist.
package access

import (
	"context"
	"slices"
)

// Role is what an account may do; the scope says where.
type Role string

// The roles. Admin may do everything everywhere; the others act within
// their scope only.
const (
	Admin           Role = "admin"            // everything
	Manager         Role = "manager"          // figures, alerts, reports
	CustomerService Role = "customer_service" // incident desk and surveys
	Technician      Role = "technician"       // devices, diagnostics, device alerts
	Viewer          Role = "viewer"           // read only
	Integrator      Role = "integrator"       // API tokens only: activate keypads
)

// Roles lists every role, in the order pages show them.
var Roles = []Role{Admin, Manager, CustomerService, Technician, Viewer, Integrator}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// Scope is a set of organisations and sites. All covers everything (the
// admin's scope); an organisation covers all its sites.
type Scope struct {
	All   bool     `json:"all,omitempty"`
	Orgs  []string `json:"orgs,omitempty"`
	Sites []string `json:"sites,omitempty"`
}

// Everything is the admin's scope.
var Everything = Scope{All: true}

// Allows reports whether something of organisation org at site site is in
// the scope. site may be empty for things that belong to the organisation
// as a whole; then only an organisation grant (or All) covers it.
func (s Scope) Allows(org, site string) bool {
	if s.All {
		return true
	}
	if org != "" && slices.Contains(s.Orgs, org) {
		return true
	}
	return site != "" && slices.Contains(s.Sites, site)
}

// Principal is who is asking: a signed-in account, or one of its API
// tokens (Token names it), or the bootstrap admin token.
type Principal struct {
	Account string // account name; "bootstrap" for SEMKO_API_TOKEN
	Role    Role
	Scope   Scope
	Token   string // the API token's id when the request came with one
	Lang    string // the account's language: "en", "bg" or "ru"
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal of a request, if any.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Allows is a shorthand for a request's principal's scope: false when the
// request carries no principal.
func Allows(ctx context.Context, org, site string) bool {
	p, ok := FromContext(ctx)
	return ok && p.Scope.Allows(org, site)
}
