package fleetpages

import (
	"errors"
	"net/http"
	"strings"

	"github.com/semko/semko/backend/fleet/fleetdb"
	"github.com/semko/semko/backend/web"
)

// countersData is the counters page: every counter with its keypad,
// operator and service, and the forms to name operators and services.
type countersData struct {
	Counters []fleetdb.Counter
	Error    string
	Field    string // "counter:<id>", "operator" or "service"
	Form     map[string]string
}

func (p *Pages) serveCounters(w http.ResponseWriter, r *http.Request) {
	p.renderCounters(w, r, http.StatusOK, countersData{Form: map[string]string{}})
}

func (p *Pages) renderCounters(w http.ResponseWriter, r *http.Request, status int, d countersData) {
	cs, err := p.opts.Fleet.DB.Counters(r.Context())
	if err != nil {
		p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
		return
	}
	d.Counters = cs
	p.con.RenderStatus(w, r, status, p.counters, d)
}

// failStatus is the answer to a refused fleet change.
func failStatus(err error) int {
	if errors.Is(err, fleetdb.ErrNotFound) || errors.Is(err, fleetdb.ErrInvalid) || errors.Is(err, fleetdb.ErrExists) {
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

// assign sets a counter's operator and service (empty clears them).
func (p *Pages) assign(w http.ResponseWriter, r *http.Request) {
	if !p.con.Form(w, r) {
		return
	}
	id := r.PathValue("id")
	op, svc := strings.TrimSpace(r.PostForm.Get("operator")), strings.TrimSpace(r.PostForm.Get("service"))
	if err := p.opts.Fleet.DB.PutCounter(r.Context(), id, fleetdb.CounterPatch{Operator: &op, Service: &svc}); err != nil {
		if failStatus(err) == http.StatusInternalServerError {
			p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
			return
		}
		p.renderCounters(w, r, failStatus(err), countersData{Error: err.Error(), Field: "counter:" + id, Form: map[string]string{}})
		return
	}
	web.Redirect(w, r, "/fleet/counters?done=saved")
}

func (p *Pages) putOperator(w http.ResponseWriter, r *http.Request) {
	p.putNamed(w, r, "operator", func(id, name, org string) error {
		return p.opts.Fleet.DB.PutOperator(r.Context(), id, name, org)
	})
}

func (p *Pages) putService(w http.ResponseWriter, r *http.Request) {
	p.putNamed(w, r, "service", func(id, name, _ string) error {
		return p.opts.Fleet.DB.PutService(r.Context(), id, name)
	})
}

func (p *Pages) putNamed(w http.ResponseWriter, r *http.Request, field string, put func(id, name, org string) error) {
	if !p.con.Form(w, r) {
		return
	}
	f := map[string]string{}
	for _, k := range []string{"id", "name", "org"} {
		f[field+"_"+k] = strings.TrimSpace(r.PostForm.Get(k))
	}
	if err := put(f[field+"_id"], f[field+"_name"], f[field+"_org"]); err != nil {
		if failStatus(err) == http.StatusInternalServerError {
			p.con.Error(w, r, http.StatusInternalServerError, "error.internal")
			return
		}
		p.renderCounters(w, r, failStatus(err), countersData{Error: err.Error(), Field: field, Form: f})
		return
	}
	web.Redirect(w, r, "/fleet/counters?done=saved")
}
