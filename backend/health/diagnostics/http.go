package diagnostics

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/alert"
)

// Route is one HTTP endpoint and who may call it; the backend mounts
// them on its access router.
type Route struct {
	Pattern string
	Handler http.Handler
	Rule    access.Rule
}

// Status is what GET /api/v1/diagnostics answers.
type Status struct {
	// Next is each scheduled check's next run.
	Next map[string]time.Time `json:"next"`
	// Open are the findings raised and not resolved, by kind then device.
	Open []alert.Finding `json:"open"`
}

// Routes serves the diagnostics to support:
//
//	GET  /api/v1/diagnostics          the schedule and the open findings
//	POST /api/v1/diagnostics/{check}  run one check now (e.g. selftest after a repair)
func (d *Diagnostics) Routes() []Route {
	return []Route{
		{Pattern: "GET /api/v1/diagnostics", Handler: http.HandlerFunc(d.serveStatus), Rule: access.Allow(access.Admin, access.Technician)},
		// A check runs over the whole fleet: the admin's alone.
		{Pattern: "POST /api/v1/diagnostics/{check}", Handler: http.HandlerFunc(d.serveRun), Rule: access.Allow(access.Admin)},
	}
}

func (d *Diagnostics) serveStatus(w http.ResponseWriter, r *http.Request) {
	scope := access.ScopeOf(r.Context())
	open := slices.DeleteFunc(d.Open(), func(f alert.Finding) bool { return !scope.Allows(f.Subject.Org, f.Subject.Site) })
	sort.Slice(open, func(i, j int) bool {
		if open[i].Kind != open[j].Kind {
			return open[i].Kind < open[j].Kind
		}
		return open[i].Subject.Key() < open[j].Subject.Key()
	})
	writeJSON(w, http.StatusOK, Status{Next: d.Jobs(), Open: open})
}

func (d *Diagnostics) serveRun(w http.ResponseWriter, r *http.Request) {
	check := r.PathValue("check")
	err := d.CheckNow(r.Context(), check)
	switch {
	case errors.Is(err, ErrUnknownCheck):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"ran": check, "open": len(d.Open())})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
