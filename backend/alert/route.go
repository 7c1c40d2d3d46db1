package alert

import (
	"cmp"
	"fmt"
	"strconv"
	"time"
)

// ReceiverResponsible is a receiver name every routing tree knows: the
// responsible person of the alert's counter or site, from the registry
// (carried in the finding's details, see DetailResponsible...).
const ReceiverResponsible = "responsible"

// Details keys that name the responsible person of a finding.
const (
	DetailResponsibleName  = "responsible_name"
	DetailResponsibleEmail = "responsible_email"
	DetailResponsibleLang  = "responsible_lang"
)

// Defaults of the routing tree's root.
const (
	DefaultGroupWait      = 30 * time.Second
	DefaultGroupInterval  = 5 * time.Minute
	DefaultRepeatInterval = 4 * time.Hour
	// DefaultDeadline is counted in working hours on the site's calendar.
	DefaultDeadline = 3 * time.Hour
)

// RouteConfig is one node of the routing tree, as configured. Zero
// durations inherit the parent's.
type RouteConfig struct {
	// Match selects the alerts this node takes; empty matches all.
	Match Matchers `yaml:"match,omitempty" json:"match,omitempty"`
	// Receivers are notified first (escalation level 0).
	Receivers []string `yaml:"receivers,omitempty" json:"receivers,omitempty"`
	// Escalate lists the receivers of the next levels: each level is
	// notified when the previous one let its deadline pass without
	// acknowledging.
	Escalate [][]string `yaml:"escalate,omitempty" json:"escalate,omitempty"`
	// Deadline is the working time (on the site's business calendar) each
	// level has to acknowledge.
	Deadline       time.Duration `yaml:"deadline,omitempty" json:"deadline,omitempty"`
	GroupWait      time.Duration `yaml:"group_wait,omitempty" json:"group_wait,omitempty"`
	GroupInterval  time.Duration `yaml:"group_interval,omitempty" json:"group_interval,omitempty"`
	RepeatInterval time.Duration `yaml:"repeat_interval,omitempty" json:"repeat_interval,omitempty"`
	// Routes are tried in order; the first that matches takes the alert
	// (and may hand it further down). When none matches, this node does.
	Routes []RouteConfig `yaml:"routes,omitempty" json:"routes,omitempty"`
}

// Route is a compiled node of the routing tree.
type Route struct {
	ID             string // position in the tree, "0.1.0": part of group keys
	Match          Matchers
	Levels         [][]string // Levels[0] is Receivers, then Escalate
	Deadline       time.Duration
	GroupWait      time.Duration
	GroupInterval  time.Duration
	RepeatInterval time.Duration
	Children       []*Route
}

// NewRoute compiles the tree under root, checking matchers and that every
// receiver named is in receivers (or is ReceiverResponsible).
func NewRoute(root RouteConfig, receivers map[string]Receiver) (*Route, error) {
	parent := Route{
		Deadline: DefaultDeadline, GroupWait: DefaultGroupWait,
		GroupInterval: DefaultGroupInterval, RepeatInterval: DefaultRepeatInterval,
	}
	return compile(root, &parent, "0", receivers)
}

func compile(c RouteConfig, parent *Route, id string, receivers map[string]Receiver) (*Route, error) {
	if err := c.Match.Check(); err != nil {
		return nil, fmt.Errorf("route %s: %w", id, err)
	}
	r := &Route{
		ID: id, Match: c.Match,
		Deadline: cmp.Or(c.Deadline, parent.Deadline), GroupWait: cmp.Or(c.GroupWait, parent.GroupWait),
		GroupInterval: cmp.Or(c.GroupInterval, parent.GroupInterval), RepeatInterval: cmp.Or(c.RepeatInterval, parent.RepeatInterval),
	}
	if c.Deadline < 0 || c.GroupWait < 0 || c.GroupInterval < 0 || c.RepeatInterval < 0 {
		return nil, fmt.Errorf("route %s: %w: negative duration", id, ErrInvalid)
	}
	levels := append([][]string{c.Receivers}, c.Escalate...)
	if len(c.Receivers) == 0 && len(c.Escalate) == 0 {
		levels = parent.Levels // inherit the parent's receivers
	}
	for _, level := range levels {
		for _, name := range level {
			if _, ok := receivers[name]; !ok && name != ReceiverResponsible {
				return nil, fmt.Errorf("route %s: %w: unknown receiver %q", id, ErrInvalid, name)
			}
		}
	}
	r.Levels = levels
	for i, child := range c.Routes {
		cr, err := compile(child, r, id+"."+strconv.Itoa(i), receivers)
		if err != nil {
			return nil, err
		}
		r.Children = append(r.Children, cr)
	}
	return r, nil
}

// Find returns the node that takes a: the deepest first match below r, or
// r itself. r's own matchers are not checked (the root takes everything).
func (r *Route) Find(a Alert) *Route {
	for _, c := range r.Children {
		if c.Match.Match(a) {
			return c.Find(a)
		}
	}
	return r
}

// Receivers returns the names for escalation level, or nil past the last.
func (r *Route) Receivers(level int) []string {
	if level < 0 || level >= len(r.Levels) {
		return nil
	}
	return r.Levels[level]
}
