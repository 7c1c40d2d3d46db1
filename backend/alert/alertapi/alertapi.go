// Package alertapi serves the alert manager over HTTP, mounted behind the
// API token through api.Options.Routes:
//
//	GET    /api/v1/alerts                 ?state=open|firing|acknowledged|resolved&kind=&severity=&org=&site=&device=&since=RFC3339&limit=
//	GET    /api/v1/alerts/{id}            the alert and its audit trail
//	POST   /api/v1/alerts/{id}/ack        {"by": "...", "comment": "..."} ("by" is the caller's account)
//	POST   /api/v1/alerts/{id}/resolve    {"by": "...", "comment": "..."}
//	GET    /api/v1/silences               silences not yet ended
//	POST   /api/v1/silences               {"matchers": {...}, "ends_at" | "duration", "created_by", "comment"}
//	DELETE /api/v1/silences/{id}
//
// Errors answer {"error": "..."}: 400 for a bad request, 404 for an
// unknown id, 409 for an alert already resolved.
package alertapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/api"
)

// maxBody bounds request bodies: a comment or a silence is small.
const maxBody = 64 << 10

// Routes returns the endpoints for m.
func Routes(m *alert.Manager, log *slog.Logger) []api.Route {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := handlers{m: m, log: log}
	at := Locator(m)
	return []api.Route{
		{Pattern: "GET /api/v1/alerts", Handler: http.HandlerFunc(h.list), Rule: access.Allow(access.Staff...)},
		{Pattern: "GET /api/v1/alerts/{id}", Handler: http.HandlerFunc(h.get), Rule: access.Allow(access.Staff...).At(at)},
		{Pattern: "POST /api/v1/alerts/{id}/ack", Handler: http.HandlerFunc(h.ack), Rule: access.Allow(Responders...).At(at)},
		{Pattern: "POST /api/v1/alerts/{id}/resolve", Handler: http.HandlerFunc(h.resolve), Rule: access.Allow(Responders...).At(at)},
		// Silences match by labels across organisations: only an admin
		// sets or lifts them through the API (the console silences one
		// alert's subject, within scope).
		{Pattern: "GET /api/v1/silences", Handler: http.HandlerFunc(h.silences), Rule: access.Allow(access.Admin)},
		{Pattern: "POST /api/v1/silences", Handler: http.HandlerFunc(h.addSilence), Rule: access.Allow(access.Admin)},
		{Pattern: "DELETE /api/v1/silences/{id}", Handler: http.HandlerFunc(h.deleteSilence), Rule: access.Allow(access.Admin)},
	}
}

// Responders are the roles that acknowledge, resolve and silence alerts.
var Responders = []access.Role{access.Admin, access.Manager, access.Technician}

// Locator finds the organisation and site of the alert {id}.
func Locator(m *alert.Manager) *access.Locator {
	return &access.Locator{Kind: "alert", Find: func(r *http.Request) (access.Place, error) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			return access.Place{}, access.ErrNotFound
		}
		a, _, err := m.Get(r.Context(), id)
		if errors.Is(err, alert.ErrNotFound) {
			return access.Place{}, access.ErrNotFound
		}
		if err != nil {
			return access.Place{}, err
		}
		return access.Place{Org: a.Subject.Org, Site: a.Subject.Site}, nil
	}}
}

// ListScoped lists the alerts of f within scope: with a scope narrower
// than everything it reads up to alert.MaxList and keeps those in scope,
// then applies f's limit.
func ListScoped(ctx context.Context, m *alert.Manager, f alert.Filter, scope access.Scope) ([]alert.Alert, error) {
	if scope.All {
		return m.List(ctx, f)
	}
	limit := f.Limit
	if limit <= 0 || limit > alert.MaxList {
		limit = alert.MaxList
	}
	f.Limit = alert.MaxList
	list, err := m.List(ctx, f)
	if err != nil {
		return nil, err
	}
	out := list[:0]
	for _, a := range list {
		if scope.Allows(a.Subject.Org, a.Subject.Site) && len(out) < limit {
			out = append(out, a)
		}
	}
	return out, nil
}

type handlers struct {
	m   *alert.Manager
	log *slog.Logger
}

// ListAnswer is the answer of GET /api/v1/alerts.
type ListAnswer struct {
	Alerts []alert.Alert `json:"alerts"`
}

// AlertAnswer is the answer of GET /api/v1/alerts/{id}.
type AlertAnswer struct {
	Alert  alert.Alert   `json:"alert"`
	Events []alert.Event `json:"events"`
}

// Action is the body of ack and resolve.
type Action struct {
	By      string `json:"by"`
	Comment string `json:"comment,omitempty"`
}

// SilenceRequest is the body of POST /api/v1/silences: EndsAt, or Duration
// from now (Go syntax, "2h30m").
type SilenceRequest struct {
	Matchers  alert.Matchers `json:"matchers"`
	StartsAt  time.Time      `json:"starts_at,omitzero"`
	EndsAt    time.Time      `json:"ends_at,omitzero"`
	Duration  string         `json:"duration,omitempty"`
	CreatedBy string         `json:"created_by"`
	Comment   string         `json:"comment,omitempty"`
}

// SilencesAnswer is the answer of GET /api/v1/silences.
type SilencesAnswer struct {
	Silences []alert.Silence `json:"silences"`
}

func (h handlers) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := alert.Filter{
		State: q.Get("state"), Kind: alert.Kind(q.Get("kind")), Severity: alert.Severity(q.Get("severity")),
		Org: q.Get("org"), Site: q.Get("site"), Device: q.Get("device"),
	}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "since: want RFC 3339, e.g. 2026-11-24T09:00:00Z")
			return
		}
		f.Since = t
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "limit: want a positive number")
			return
		}
		f.Limit = n
	}
	list, err := ListScoped(r.Context(), h.m, f, access.ScopeOf(r.Context()))
	if err != nil {
		h.fail(w, err)
		return
	}
	if list == nil {
		list = []alert.Alert{}
	}
	writeJSON(w, http.StatusOK, ListAnswer{Alerts: list})
}

func (h handlers) get(w http.ResponseWriter, r *http.Request) {
	id, ok := alertID(w, r)
	if !ok {
		return
	}
	a, evs, err := h.m.Get(r.Context(), id)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, AlertAnswer{Alert: a, Events: evs})
}

func (h handlers) ack(w http.ResponseWriter, r *http.Request) {
	h.act(w, r, h.m.Acknowledge)
}

func (h handlers) resolve(w http.ResponseWriter, r *http.Request) {
	h.act(w, r, h.m.ResolveByHand)
}

func (h handlers) act(w http.ResponseWriter, r *http.Request, do func(ctx context.Context, id int64, by, comment string) (alert.Alert, error)) {
	id, ok := alertID(w, r)
	if !ok {
		return
	}
	var body Action
	if !readJSON(w, r, &body) {
		return
	}
	// An account acts as itself, whatever the body says; the bootstrap
	// token is shared by tools, which name the person in "by".
	if p, ok := access.FromContext(r.Context()); ok && p.Account != "bootstrap" {
		body.By = p.Account
	}
	a, err := do(r.Context(), id, body.By, body.Comment)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (h handlers) silences(w http.ResponseWriter, _ *http.Request) {
	list := h.m.Silences()
	if list == nil {
		list = []alert.Silence{}
	}
	writeJSON(w, http.StatusOK, SilencesAnswer{Silences: list})
}

func (h handlers) addSilence(w http.ResponseWriter, r *http.Request) {
	var req SilenceRequest
	if !readJSON(w, r, &req) {
		return
	}
	s := alert.Silence{Matchers: req.Matchers, StartsAt: req.StartsAt, EndsAt: req.EndsAt, CreatedBy: req.CreatedBy, Comment: req.Comment}
	if req.Duration != "" {
		d, err := time.ParseDuration(req.Duration)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "duration: want a positive Go duration such as 2h30m")
			return
		}
		start := req.StartsAt
		if start.IsZero() {
			start = time.Now()
		}
		s.EndsAt = start.Add(d)
	}
	s, err := h.m.AddSilence(r.Context(), s)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, s)
}

func (h handlers) deleteSilence(w http.ResponseWriter, r *http.Request) {
	if err := h.m.DeleteSilence(r.Context(), r.PathValue("id")); err != nil {
		h.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func alertID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		writeError(w, http.StatusBadRequest, "alert id: want a positive number")
		return 0, false
	}
	return id, true
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return false
	}
	return true
}

func (h handlers) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, alert.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, alert.ErrResolved):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, alert.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		h.log.Error("alert api", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
