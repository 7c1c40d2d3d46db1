package fleetpages

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/semko/semko/backend/fleet/fleetdb"
	"github.com/semko/semko/backend/web"
	"github.com/semko/semko/fleet/devconfig"
)

// configData is the override form: a level, an id and the override as
// JSON (the fleet file's shape), with the error next to the field it is
// about.
type configData struct {
	Level, ID, Override string
	Error, Field        string
}

func (p *Pages) serveConfig(w http.ResponseWriter, r *http.Request) {
	d := configData{Level: r.URL.Query().Get("level"), ID: strings.TrimSpace(r.URL.Query().Get("id"))}
	if d.Level == "" {
		d.Level = string(fleetdb.LevelOrg)
	}
	status := http.StatusOK
	if d.ID != "" {
		o, err := p.opts.Fleet.DB.Override(r.Context(), fleetdb.Level(d.Level), d.ID)
		switch {
		case errors.Is(err, fleetdb.ErrNotFound) || errors.Is(err, fleetdb.ErrInvalid):
			status, d.Field, d.Error = http.StatusNotFound, "id", err.Error()
		case err != nil:
			p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
			return
		case o != nil:
			b, _ := json.MarshalIndent(o, "", "  ")
			d.Override = string(b)
		}
	}
	p.con.RenderStatus(w, r, status, p.config, d)
}

func (p *Pages) setConfig(w http.ResponseWriter, r *http.Request) {
	if !p.con.Form(w, r) {
		return
	}
	d := configData{Level: r.PostForm.Get("level"), ID: strings.TrimSpace(r.PostForm.Get("id")), Override: r.PostForm.Get("override")}
	fail := func(status int, field string, err error) {
		d.Field, d.Error = field, err.Error()
		p.con.RenderStatus(w, r, status, p.config, d)
	}
	switch fleetdb.Level(d.Level) {
	case fleetdb.LevelOrg, fleetdb.LevelSite, fleetdb.LevelDevice:
	default:
		fail(http.StatusUnprocessableEntity, "level", fmt.Errorf("level %q is not org, site or device", d.Level))
		return
	}
	var o *devconfig.Override
	if strings.TrimSpace(d.Override) != "" {
		dec := json.NewDecoder(bytes.NewReader([]byte(d.Override)))
		dec.DisallowUnknownFields() // a misspelt key is an error, as in the fleet file
		o = new(devconfig.Override)
		if err := dec.Decode(o); err != nil {
			fail(http.StatusUnprocessableEntity, "override", fmt.Errorf("not a configuration override: %w", err))
			return
		}
	}
	err := p.opts.Fleet.DB.SetOverride(r.Context(), fleetdb.Level(d.Level), d.ID, o)
	switch {
	case errors.Is(err, fleetdb.ErrNotFound):
		fail(http.StatusUnprocessableEntity, "id", err)
	case errors.Is(err, fleetdb.ErrInvalid):
		fail(http.StatusUnprocessableEntity, "override", err)
	case err != nil:
		p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
	default:
		web.Redirect(w, r, "/fleet/config?done=saved&level="+d.Level+"&id="+d.ID)
	}
}
