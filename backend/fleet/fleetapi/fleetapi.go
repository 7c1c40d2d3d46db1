// Package fleetapi serves the fleet database over HTTP for support: list,
// add, move and retire devices, assign counters, operators and services,
// set configuration overrides, compare each unit's desired and applied
// configuration, and export the fleet file. The backend mounts Routes
// behind the API's bearer token.
package fleetapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/fleet/fleetdb"
	"github.com/semko/semko/backend/fleet/live"
	"github.com/semko/semko/fleet/devconfig"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/protocol"
)

// Route is one endpoint and who may call it; the backend turns it into
// an api.Route.
type Route struct {
	Pattern string
	Handler http.Handler
	Rule    access.Rule
}

// Options configures Routes.
type Options struct {
	DB *fleetdb.DB
	// Live returns the live state of every device (ingest.Devices); nil
	// shows no live state.
	Live   func() []live.DeviceState
	Logger *slog.Logger
}

// maxBody bounds request bodies: a device or an override is small.
const maxBody = 64 << 10

type handler struct {
	opts Options
	log  *slog.Logger
}

// DeviceView is a device with its live state and configuration status.
type DeviceView struct {
	fleetdb.Device
	Live   *live.DeviceState `json:"live,omitempty"`
	Config *ConfigStatus     `json:"config_status,omitempty"`
}

// ConfigStatus compares what a device should run with what it confirmed.
// A device no level configures is not managed: nothing is pushed to it and
// it runs its edge's own defaults (Desired is empty, InSync true).
type ConfigStatus struct {
	Managed bool   `json:"managed"`
	Desired string `json:"desired,omitempty"` // version of the resolved config
	Applied string `json:"applied,omitempty"` // last version the device confirmed
	Error   string `json:"error,omitempty"`   // why it refused the latest one
	InSync  bool   `json:"in_sync"`
}

// DeviceConfig is the answer of GET .../devices/{id}/config.
type DeviceConfig struct {
	Device    string             `json:"device"`
	Status    ConfigStatus       `json:"status"`
	Desired   protocol.Config    `json:"desired"`
	Overrides map[string]any     `json:"overrides"` // org, site, device: what each level declares
	Placement registry.Placement `json:"placement"`
}

// Routes returns the endpoints:
//
//	GET    /api/v1/fleet/devices                 every device with live state and config status
//	POST   /api/v1/fleet/devices                 fleetdb.NewDevice; 201 {"device", "secret"} (secret shown once)
//	GET    /api/v1/fleet/devices/{id}            one device, with its history
//	PATCH  /api/v1/fleet/devices/{id}            fleetdb.DevicePatch (move: {"counter": "c2"}; retire: {"state": "retired"})
//	DELETE /api/v1/fleet/devices/{id}            retire
//	GET    /api/v1/fleet/devices/{id}/config     desired vs applied configuration
//	GET    /api/v1/fleet/counters                counters and their assignments
//	PATCH  /api/v1/fleet/counters/{id}           fleetdb.CounterPatch (device, operator, service, name, site)
//	PUT    /api/v1/fleet/operators/{id}          {"name", "org"}
//	PUT    /api/v1/fleet/services/{id}           {"name"}
//	GET    /api/v1/fleet/config/{level}/{id}     the override at org, site or device level
//	PUT    /api/v1/fleet/config/{level}/{id}     devconfig.Override; 422 when invalid
//	GET    /api/v1/fleet/export                  the fleet as a fleet file (YAML)
//
// Errors answer {"error": "..."}: 400 malformed, 404 unknown, 409 exists,
// 422 refused because the fleet or a configuration would be invalid.
func Routes(opts Options) []Route {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{opts: opts, log: opts.Logger}
	read := access.Allow(access.Staff...)
	admin := access.Allow(access.Admin)
	dev := DeviceLocator(opts.DB)
	return []Route{
		{"GET /api/v1/fleet/devices", http.HandlerFunc(h.listDevices), read},
		{"POST /api/v1/fleet/devices", http.HandlerFunc(h.addDevice), admin},
		{"GET /api/v1/fleet/devices/{id}", http.HandlerFunc(h.getDevice), read.At(dev)},
		{"PATCH /api/v1/fleet/devices/{id}", http.HandlerFunc(h.patchDevice), admin},
		{"DELETE /api/v1/fleet/devices/{id}", http.HandlerFunc(h.retireDevice), admin},
		{"GET /api/v1/fleet/devices/{id}/config", http.HandlerFunc(h.deviceConfig), read.At(dev)},
		{"GET /api/v1/fleet/counters", http.HandlerFunc(h.listCounters), admin},
		{"PATCH /api/v1/fleet/counters/{id}", http.HandlerFunc(h.patchCounter), admin},
		{"PUT /api/v1/fleet/operators/{id}", http.HandlerFunc(h.putOperator), admin},
		{"PUT /api/v1/fleet/services/{id}", http.HandlerFunc(h.putService), admin},
		{"GET /api/v1/fleet/config/{level}/{id}", http.HandlerFunc(h.getOverride), admin},
		{"PUT /api/v1/fleet/config/{level}/{id}", http.HandlerFunc(h.putOverride), admin},
		{"GET /api/v1/fleet/export", http.HandlerFunc(h.export), admin},
	}
}

// DeviceLocator finds the organisation and site of the device {id} in the
// fleet database (retired and unplaced devices included: those have no
// organisation and only an admin reaches them).
func DeviceLocator(db *fleetdb.DB) *access.Locator {
	return &access.Locator{Kind: "device", Find: func(r *http.Request) (access.Place, error) {
		d, err := db.Device(r.Context(), r.PathValue("id"))
		if errors.Is(err, fleetdb.ErrNotFound) {
			return access.Place{}, access.ErrNotFound
		}
		if err != nil {
			return access.Place{}, err
		}
		return access.Place{Org: d.Placement.Org, Site: d.Placement.Site}, nil
	}}
}

func (h *handler) live() map[string]live.DeviceState {
	m := map[string]live.DeviceState{}
	if h.opts.Live != nil {
		for _, s := range h.opts.Live() {
			m[s.Device] = s
		}
	}
	return m
}

func (h *handler) view(d fleetdb.Device, live map[string]live.DeviceState, reg *registry.Registry) DeviceView {
	v := DeviceView{Device: d}
	if s, ok := live[d.ID]; ok {
		v.Live = &s
	}
	if d.State == fleetdb.StateActive {
		if c, err := reg.Config(d.ID); err == nil {
			st := status(reg.Managed(d.ID), c, v.Live)
			v.Config = &st
		}
	}
	return v
}

func (h *handler) listDevices(w http.ResponseWriter, r *http.Request) {
	devs, err := h.opts.DB.Devices(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	live, reg := h.live(), h.opts.DB.Current()
	scope := access.ScopeOf(r.Context())
	out := make([]DeviceView, 0, len(devs))
	for _, d := range devs {
		if scope.Allows(d.Placement.Org, d.Placement.Site) {
			out = append(out, h.view(d, live, reg))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) addDevice(w http.ResponseWriter, r *http.Request) {
	var nd fleetdb.NewDevice
	if !h.decode(w, r, &nd) {
		return
	}
	secret, err := h.opts.DB.AddDevice(r.Context(), nd)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.log.Info("api: device added", "device", nd.ID, "counter", nd.Counter)
	writeJSON(w, http.StatusCreated, map[string]string{"device": nd.ID, "secret": secret})
}

func (h *handler) getDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, err := h.opts.DB.Device(r.Context(), id)
	if err != nil {
		h.fail(w, err)
		return
	}
	hist, err := h.opts.DB.History(r.Context(), id, 100)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		DeviceView
		History []fleetdb.Event `json:"history"`
	}{h.view(d, h.live(), h.opts.DB.Current()), hist})
}

func (h *handler) patchDevice(w http.ResponseWriter, r *http.Request) {
	var p fleetdb.DevicePatch
	if !h.decode(w, r, &p) {
		return
	}
	h.updateDevice(w, r, p)
}

func (h *handler) retireDevice(w http.ResponseWriter, r *http.Request) {
	s := fleetdb.StateRetired
	h.updateDevice(w, r, fleetdb.DevicePatch{State: &s})
}

func (h *handler) updateDevice(w http.ResponseWriter, r *http.Request, p fleetdb.DevicePatch) {
	id := r.PathValue("id")
	if err := h.opts.DB.UpdateDevice(r.Context(), id, p); err != nil {
		h.fail(w, err)
		return
	}
	d, err := h.opts.DB.Device(r.Context(), id)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.log.Info("api: device changed", "device", id, "state", d.State, "counter", d.Placement.Counter)
	writeJSON(w, http.StatusOK, h.view(d, h.live(), h.opts.DB.Current()))
}

func (h *handler) deviceConfig(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	reg := h.opts.DB.Current()
	org, site, dev, ok := reg.Overrides(id)
	if !ok {
		h.fail(w, fmt.Errorf("device %q (or retired): %w", id, fleetdb.ErrNotFound))
		return
	}
	c, err := reg.Config(id)
	if err != nil {
		h.fail(w, err)
		return
	}
	out := DeviceConfig{Device: id, Desired: c, Overrides: map[string]any{"org": org, "site": site, "device": dev}}
	out.Placement, _ = reg.Placement(id)
	var live *live.DeviceState
	if s, ok := h.live()[id]; ok {
		live = &s
	}
	out.Status = status(reg.Managed(id), c, live)
	writeJSON(w, http.StatusOK, out)
}

func status(managed bool, desired protocol.Config, live *live.DeviceState) ConfigStatus {
	st := ConfigStatus{Managed: managed}
	if managed {
		st.Desired = desired.Version
	}
	if live != nil {
		st.Applied, st.Error = live.ConfigVersion, live.ConfigError
	}
	st.InSync = !managed || st.Applied == st.Desired
	return st
}

func (h *handler) listCounters(w http.ResponseWriter, r *http.Request) {
	cs, err := h.opts.DB.Counters(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, cs)
}

func (h *handler) patchCounter(w http.ResponseWriter, r *http.Request) {
	var p fleetdb.CounterPatch
	if !h.decode(w, r, &p) {
		return
	}
	if err := h.opts.DB.PutCounter(r.Context(), r.PathValue("id"), p); err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "counter": r.PathValue("id")})
}

func (h *handler) putOperator(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name string `json:"name"`
		Org  string `json:"org"`
	}
	if !h.decode(w, r, &in) {
		return
	}
	if err := h.opts.DB.PutOperator(r.Context(), r.PathValue("id"), in.Name, in.Org); err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "operator": r.PathValue("id")})
}

func (h *handler) putService(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name string `json:"name"`
	}
	if !h.decode(w, r, &in) {
		return
	}
	if err := h.opts.DB.PutService(r.Context(), r.PathValue("id"), in.Name); err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "service": r.PathValue("id")})
}

func (h *handler) getOverride(w http.ResponseWriter, r *http.Request) {
	o, err := h.opts.DB.Override(r.Context(), fleetdb.Level(r.PathValue("level")), r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return
	}
	if o == nil {
		o = &devconfig.Override{}
	}
	writeJSON(w, http.StatusOK, o)
}

func (h *handler) putOverride(w http.ResponseWriter, r *http.Request) {
	var o devconfig.Override
	if !h.decode(w, r, &o) {
		return
	}
	level, id := fleetdb.Level(r.PathValue("level")), r.PathValue("id")
	if err := h.opts.DB.SetOverride(r.Context(), level, id, &o); err != nil {
		h.fail(w, err)
		return
	}
	h.log.Info("api: config override set", "level", level, "id", id)
	writeJSON(w, http.StatusOK, o)
}

func (h *handler) export(w http.ResponseWriter, r *http.Request) {
	f, err := h.opts.DB.Export(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	b, err := f.Marshal()
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	w.Write(b)
}

// decode reads a JSON body strictly: unknown fields are errors, as in the
// fleet file, so a misspelt key is not silently dropped.
func (h *handler) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "decode body: "+err.Error())
		return false
	}
	return true
}

func (h *handler) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, fleetdb.ErrNotFound), errors.Is(err, registry.ErrUnknownDevice):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, fleetdb.ErrExists):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, fleetdb.ErrInvalid), errors.Is(err, devconfig.ErrInvalidOverride):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
	default:
		h.log.Error("api: fleet request failed", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error, see the backend log")
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
