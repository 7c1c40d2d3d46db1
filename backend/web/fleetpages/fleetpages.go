// Package fleetpages is the console's devices: a filterable list with live
// state, open findings and configuration status that refreshes itself; a
// device's page with its history, last heartbeat, findings, desired vs
// applied configuration and "run self-test now"; and, for admins, adding a
// device (its secret shown once), moving it to another counter and
// retiring it. The fleet logic is fleetdb's and fleetapi's; this package
// only shows it.
package fleetpages

import (
	"context"
	"embed"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/alertapi"
	"github.com/semko/semko/backend/fleet/fleetapi"
	"github.com/semko/semko/backend/fleet/fleetdb"
	"github.com/semko/semko/backend/web"
)

//go:embed templates/*.html messages/*.json
var files embed.FS

// Options are what the pages read.
type Options struct {
	Fleet fleetapi.Options
	// Alerts gives each device its open findings; nil shows none.
	Alerts *alert.Manager
	// SelfTest sends the self-test to one unit; nil hides the button.
	SelfTest func(ctx context.Context, device string) error
}

// Pages serves the device pages.
type Pages struct {
	con                   *web.Console
	opts                  Options
	list, one, add, added *web.Page
	config, counters      *web.Page
}

// Register adds the device pages and their navigation entries.
func Register(con *web.Console, opts Options) error {
	p := &Pages{con: con, opts: opts}
	for _, pg := range []struct {
		dst  **web.Page
		file string
	}{{&p.list, "devices.html"}, {&p.one, "device.html"}, {&p.add, "add.html"}, {&p.added, "added.html"}, {&p.config, "config.html"}, {&p.counters, "counters.html"}} {
		var err error
		if *pg.dst, err = con.Page(files, "templates/"+pg.file); err != nil {
			return err
		}
	}
	if err := con.AddCatalog(files, "messages"); err != nil {
		return err
	}
	dev := fleetapi.DeviceLocator(opts.Fleet.DB)
	read := access.Allow(access.Staff...)
	admin := access.Allow(access.Admin)
	con.HandleFunc("GET /devices", read, p.serveList)
	con.HandleFunc("GET /devices/{id}", read.At(dev), p.serveOne)
	con.HandleFunc("POST /devices/{id}/selftest", access.Allow(access.Operations...).At(dev), p.selfTest)
	con.HandleFunc("GET /fleet/add", admin, p.serveAdd)
	con.HandleFunc("POST /fleet/add", admin, p.addDevice)
	con.HandleFunc("POST /devices/{id}/move", admin.At(dev), p.move)
	con.HandleFunc("POST /devices/{id}/retire", admin.At(dev), p.retire)
	con.HandleFunc("GET /fleet/config", admin, p.serveConfig)
	con.HandleFunc("POST /fleet/config", admin, p.setConfig)
	con.HandleFunc("GET /fleet/counters", admin, p.serveCounters)
	con.HandleFunc("POST /fleet/counters/{id}", admin, p.assign)
	con.HandleFunc("POST /fleet/operators", admin, p.putOperator)
	con.HandleFunc("POST /fleet/services", admin, p.putService)
	con.AddNav(web.NavItem{Path: "/devices", Label: "nav.devices", Roles: access.Staff, Order: 30},
		web.NavItem{Path: "/fleet/add", Label: "nav.fleet", Roles: []access.Role{access.Admin}, Order: 60},
		web.NavItem{Path: "/fleet/counters", Label: "nav.fleet_counters", Roles: []access.Role{access.Admin}, Order: 62},
		web.NavItem{Path: "/fleet/config", Label: "nav.fleet_config", Roles: []access.Role{access.Admin}, Order: 65})
	return nil
}

// row is one device of the list.
type row struct {
	fleetapi.DeviceView
	Findings int
}

type listData struct {
	Devices []row
	Q       string
	State   string // online, offline, retired, out_of_sync, findings or ""
}

func (p *Pages) findings(r *http.Request) map[string]int {
	out := map[string]int{}
	if p.opts.Alerts == nil {
		return out
	}
	list, err := alertapi.ListScoped(r.Context(), p.opts.Alerts, alert.Filter{State: "open", Limit: alert.MaxList}, access.ScopeOf(r.Context()))
	if err != nil {
		return out
	}
	for _, a := range list {
		if a.Subject.Device != "" {
			out[a.Subject.Device]++
		}
	}
	return out
}

func (p *Pages) serveList(w http.ResponseWriter, r *http.Request) {
	devs, err := p.opts.Fleet.DB.Devices(r.Context())
	if err != nil {
		p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
		return
	}
	scope := access.ScopeOf(r.Context())
	devs = slices.DeleteFunc(devs, func(d fleetdb.Device) bool { return !scope.Allows(d.Placement.Org, d.Placement.Site) })
	d := listData{Q: strings.TrimSpace(r.URL.Query().Get("q")), State: r.URL.Query().Get("state")}
	found := p.findings(r)
	for _, v := range fleetapi.Views(p.opts.Fleet, devs) {
		rw := row{DeviceView: v, Findings: found[v.ID]}
		if d.Q != "" && !matches(v, d.Q) || !d.keeps(rw) {
			continue
		}
		d.Devices = append(d.Devices, rw)
	}
	p.con.Render(w, r, p.list, d)
}

func matches(v fleetapi.DeviceView, q string) bool {
	q = strings.ToLower(q)
	for _, s := range []string{v.ID, v.Placement.Org, v.Placement.Site, v.Placement.Counter, v.Model, v.Serial} {
		if strings.Contains(strings.ToLower(s), q) {
			return true
		}
	}
	return false
}

func (d listData) keeps(r row) bool {
	online := r.Live != nil && r.Live.Online
	switch d.State {
	case "online":
		return online
	case "offline":
		return !online && r.State == fleetdb.StateActive
	case "retired":
		return r.State == fleetdb.StateRetired
	case "out_of_sync":
		return r.Config != nil && !r.Config.InSync
	case "findings":
		return r.Findings > 0
	}
	return true
}

type oneData struct {
	Device   fleetapi.DeviceView
	History  []fleetdb.Event
	Config   *fleetapi.DeviceConfig
	Findings []alert.Alert
	Secret   string
	CanTest  bool
	IsAdmin  bool
	Error    string
	Field    string
}

func (p *Pages) serveOne(w http.ResponseWriter, r *http.Request) {
	p.renderOne(w, r, http.StatusOK, func(*oneData) {})
}

func (p *Pages) renderOne(w http.ResponseWriter, r *http.Request, status int, edit func(*oneData)) {
	id := r.PathValue("id")
	dev, err := p.opts.Fleet.DB.Device(r.Context(), id)
	if errors.Is(err, fleetdb.ErrNotFound) {
		p.con.Error(w, r, http.StatusNotFound, "error.not_found")
		return
	}
	if err != nil {
		p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
		return
	}
	pr, _ := access.FromContext(r.Context())
	d := oneData{Device: fleetapi.Views(p.opts.Fleet, []fleetdb.Device{dev})[0],
		CanTest: p.opts.SelfTest != nil && slices.Contains(access.Operations, pr.Role) && dev.State == fleetdb.StateActive,
		IsAdmin: pr.Role == access.Admin}
	if d.History, err = p.opts.Fleet.DB.History(r.Context(), id, 100); err != nil {
		p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
		return
	}
	if c, err := fleetapi.ConfigOf(p.opts.Fleet, id); err == nil {
		d.Config = &c
	}
	if p.opts.Alerts != nil {
		d.Findings, _ = p.opts.Alerts.List(r.Context(), alert.Filter{Device: id, State: "open"})
	}
	edit(&d)
	p.con.RenderStatus(w, r, status, p.one, d)
}

func (p *Pages) selfTest(w http.ResponseWriter, r *http.Request) {
	if !p.con.Form(w, r) {
		return
	}
	if p.opts.SelfTest == nil {
		p.con.Error(w, r, http.StatusServiceUnavailable, "devices.no_selftest")
		return
	}
	if err := p.opts.SelfTest(r.Context(), r.PathValue("id")); err != nil {
		p.renderOne(w, r, http.StatusServiceUnavailable, func(d *oneData) { d.Field, d.Error = "selftest", err.Error() })
		return
	}
	web.Redirect(w, r, "/devices/"+r.PathValue("id")+"?done=selftest")
}

type addData struct {
	Counters []fleetdb.Counter
	Form     map[string]string
	Error    string
	Field    string
}

func (p *Pages) serveAdd(w http.ResponseWriter, r *http.Request) {
	p.renderAdd(w, r, http.StatusOK, addData{Form: map[string]string{}})
}

func (p *Pages) renderAdd(w http.ResponseWriter, r *http.Request, status int, d addData) {
	cs, err := p.opts.Fleet.DB.Counters(r.Context())
	if err != nil {
		p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
		return
	}
	d.Counters = cs
	p.con.RenderStatus(w, r, status, p.add, d)
}

// fieldOf names the form field a fleetdb error is about, so the page
// shows it next to that field.
func fieldOf(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "counter"):
		return "counter"
	case strings.Contains(msg, "installed"):
		return "installed"
	}
	return "id"
}

func (p *Pages) addDevice(w http.ResponseWriter, r *http.Request) {
	if !p.con.Form(w, r) {
		return
	}
	f := map[string]string{}
	for _, k := range []string{"id", "counter", "model", "serial"} {
		f[k] = strings.TrimSpace(r.PostForm.Get(k))
	}
	secret, err := p.opts.Fleet.DB.AddDevice(r.Context(), fleetdb.NewDevice{ID: f["id"], Counter: f["counter"], Model: f["model"], Serial: f["serial"]})
	if err != nil {
		status := http.StatusUnprocessableEntity
		if errors.Is(err, fleetdb.ErrExists) {
			status = http.StatusConflict
		}
		p.renderAdd(w, r, status, addData{Form: f, Error: err.Error(), Field: fieldOf(err)})
		return
	}
	// The secret is shown on this answer only, never in a URL.
	p.con.RenderStatus(w, r, http.StatusCreated, p.added, map[string]string{"Device": f["id"], "Secret": secret})
}

func (p *Pages) move(w http.ResponseWriter, r *http.Request) {
	if !p.con.Form(w, r) {
		return
	}
	counter := strings.TrimSpace(r.PostForm.Get("counter"))
	if err := p.opts.Fleet.DB.UpdateDevice(r.Context(), r.PathValue("id"), fleetdb.DevicePatch{Counter: &counter}); err != nil {
		p.renderOne(w, r, http.StatusUnprocessableEntity, func(d *oneData) { d.Field, d.Error = "counter", err.Error() })
		return
	}
	web.Redirect(w, r, "/devices/"+r.PathValue("id")+"?done=saved")
}

func (p *Pages) retire(w http.ResponseWriter, r *http.Request) {
	if !p.con.Form(w, r) {
		return
	}
	if err := p.opts.Fleet.DB.RetireDevice(r.Context(), r.PathValue("id")); err != nil {
		p.renderOne(w, r, http.StatusUnprocessableEntity, func(d *oneData) { d.Field, d.Error = "retire", err.Error() })
		return
	}
	web.Redirect(w, r, "/devices/"+r.PathValue("id")+"?done=saved")
}
