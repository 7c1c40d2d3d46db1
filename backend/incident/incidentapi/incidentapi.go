// Package incidentapi serves the incident desk over HTTP, for a document
// system or any client with a principal:
//
//	GET  /api/v1/incidents                      ?state=&department=&open=1&limit=   incidents in scope, newest first
//	POST /api/v1/incidents                      JSON Draft, or multipart/form-data (the Draft's fields and "file" parts)
//	GET  /api/v1/incidents/{id}                 the incident and its trail
//	POST /api/v1/incidents/{id}/pass            {"to": "maria", "comment": "..."}
//	POST /api/v1/incidents/{id}/update          {"comment": "..."}
//	POST /api/v1/incidents/{id}/close           {"outcome": "...", "called_back": true, "delay_reason": ""}
//	POST /api/v1/incidents/{id}/reopen          {"comment": "..."}
//	POST /api/v1/incidents/{id}/attachments     multipart/form-data, one or more "file" parts
//	GET  /api/v1/incidents/{id}/attachments/{hash}
//	POST /api/v1/incident-from-alert/{alert}   a negative-vote alert as a new incident, pre-filled
//	GET  /api/v1/incident-desk                  departments, types, channels, delay reasons
//
// The principal comes from the request's context (backend/access).
// Answers: 401 without a principal, 404 for what is out of scope (never
// 403), 403 for an action the role may not take on an incident it sees,
// 409 for a step the state does not allow, 413/415 for a file too large or
// of the wrong type, 422 {"error", "fields": {field: message}, "codes"}
// for field problems and interaction errors.
package incidentapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/api"
	"github.com/semko/semko/backend/incident"
)

// maxJSON bounds JSON bodies: a description is at most 8000 characters.
const maxJSON = 64 << 10

// Alerts finds the alert an incident is opened from (*alert.Manager).
type Alerts interface {
	Get(ctx context.Context, id int64) (alert.Alert, []alert.Event, error)
}

// Options configures Routes.
type Options struct {
	Desk       *incident.Desk
	Alerts     Alerts // nil: from-alert answers 404
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

type handlers struct {
	d      *incident.Desk
	alerts Alerts
	log    *slog.Logger
	bad    *prometheus.CounterVec
}

// Routes returns the endpoints.
func Routes(o Options) ([]api.Route, error) {
	h := handlers{d: o.Desk, alerts: o.Alerts, log: o.Logger,
		bad: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "semko_incident_api_refused_total",
			Help: "Incident API requests refused, by HTTP status."}, []string{"status"})}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(h.bad); err != nil {
			return nil, fmt.Errorf("incident api metrics: %w", err)
		}
	}
	return []api.Route{
		{Pattern: "GET /api/v1/incidents", Handler: h.with(h.list), Rule: access.Allow(access.Staff...)},
		{Pattern: "POST /api/v1/incidents", Handler: h.with(h.create), Rule: access.Allow(access.Admin, access.Manager, access.CustomerService, access.Integrator)},
		{Pattern: "GET /api/v1/incidents/{id}", Handler: h.with(h.get), Rule: access.Allow(access.Staff...)},
		{Pattern: "POST /api/v1/incidents/{id}/pass", Handler: h.with(h.pass), Rule: access.Allow(access.Admin, access.Manager, access.CustomerService, access.Technician)},
		{Pattern: "POST /api/v1/incidents/{id}/update", Handler: h.with(h.update), Rule: access.Allow(access.Admin, access.Manager, access.CustomerService, access.Technician)},
		{Pattern: "POST /api/v1/incidents/{id}/close", Handler: h.with(h.close), Rule: access.Allow(access.Admin, access.Manager, access.CustomerService, access.Technician)},
		{Pattern: "POST /api/v1/incidents/{id}/reopen", Handler: h.with(h.reopen), Rule: access.Allow(access.Admin, access.Manager, access.CustomerService, access.Technician)},
		{Pattern: "POST /api/v1/incidents/{id}/attachments", Handler: h.with(h.attach), Rule: access.Allow(access.Admin, access.Manager, access.CustomerService, access.Technician)},
		{Pattern: "GET /api/v1/incidents/{id}/attachments/{hash}", Handler: h.with(h.file), Rule: access.Allow(access.Staff...)},
		{Pattern: "POST /api/v1/incident-from-alert/{alert}", Handler: h.with(h.fromAlert), Rule: access.Allow(access.Admin, access.Manager, access.CustomerService)},
		{Pattern: "GET /api/v1/incident-desk", Handler: h.with(h.desk), Rule: access.Allow(access.Staff...)},
	}, nil
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, p access.Principal) error

// with takes the principal and turns errors into answers.
func (h handlers) with(fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := access.FromContext(r.Context())
		if !ok {
			h.fail(w, http.StatusUnauthorized, "sign in first", nil)
			return
		}
		if err := fn(w, r, p); err != nil {
			h.answerError(w, r, err)
		}
	})
}

func (h handlers) answerError(w http.ResponseWriter, r *http.Request, err error) {
	status := Status(err)
	var fe *incident.FieldErrors
	switch {
	case status == http.StatusUnprocessableEntity && errors.As(err, &fe):
		h.fail(w, status, fe.Error(), fe)
	case status == http.StatusNotFound:
		h.fail(w, status, "no such incident", nil)
	case status == http.StatusInternalServerError:
		h.log.Warn("incident api", "path", r.URL.Path, "err", err)
		h.fail(w, status, "internal error", nil)
	default:
		h.fail(w, status, err.Error(), nil)
	}
}

// Status is the HTTP status of a desk error, for the API and the
// console's pages alike: 422 field problems, 404 out of scope or absent,
// 403 a role that may not act, 409 a step the state does not allow,
// 413/415 a file too large or of the wrong type, 400 a malformed request.
func Status(err error) int {
	var fe *incident.FieldErrors
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &fe):
		return http.StatusUnprocessableEntity
	case errors.Is(err, incident.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, incident.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, incident.ErrTransition):
		return http.StatusConflict
	case errors.Is(err, incident.ErrTooLarge), errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, incident.ErrFileType):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, errBadRequest), errors.Is(err, incident.ErrInvalid), errors.Is(err, incident.ErrUnreadable):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

var errBadRequest = errors.New("bad request")

type errorAnswer struct {
	Error  string            `json:"error"`
	Fields map[string]string `json:"fields,omitempty"`
	Codes  map[string]string `json:"codes,omitempty"`
}

func (h handlers) fail(w http.ResponseWriter, status int, msg string, fe *incident.FieldErrors) {
	h.bad.WithLabelValues(strconv.Itoa(status)).Inc()
	a := errorAnswer{Error: msg}
	if fe != nil {
		a.Fields, a.Codes = fe.Fields, fe.Codes
	}
	writeJSON(w, status, a)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		return fmt.Errorf("%w: body: %v", errBadRequest, err)
	}
	return nil
}

func pathID(r *http.Request, name string) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, incident.ErrNotFound
	}
	return id, nil
}

// IncidentAnswer is the answer of GET /api/v1/incidents/{id} and of every
// change.
type IncidentAnswer struct {
	Incident incident.Incident `json:"incident"`
	Trail    []incident.Step   `json:"trail,omitempty"`
}

func (h handlers) list(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	q := r.URL.Query()
	f := incident.Filter{State: incident.State(q.Get("state")), Department: q.Get("department"), Open: q.Get("open") == "1"}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil {
			return fmt.Errorf("%w: limit %q", errBadRequest, l)
		}
		f.Limit = n
	}
	l, err := h.d.List(r.Context(), p, f)
	if err != nil {
		return err
	}
	if l == nil {
		l = []incident.Incident{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"incidents": l})
	return nil
}

func (h handlers) get(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	in, err := h.d.Get(r.Context(), p, id)
	if err != nil {
		return err
	}
	trail, err := h.d.Trail(r.Context(), p, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, IncidentAnswer{Incident: in, Trail: trail})
	return nil
}

func (h handlers) create(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	var dr incident.Draft
	var created []string // files new with this request, removed if it fails
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		var err error
		if dr, created, err = ReadForm(w, r, h.d); err != nil {
			RemoveFiles(r.Context(), h.d, created)
			return err
		}
	} else if err := decode(w, r, &dr); err != nil {
		return err
	}
	in, err := h.d.Register(r.Context(), p, dr)
	if err != nil {
		RemoveFiles(r.Context(), h.d, created)
		return err
	}
	writeJSON(w, http.StatusCreated, IncidentAnswer{Incident: in})
	return nil
}

// RemoveFiles deletes the files a refused request stored (the hashes
// ReadForm returned): nothing half-saved.
//
// It runs even when the client is gone (its context cancelled).
func RemoveFiles(ctx context.Context, d *incident.Desk, hashes []string) {
	ctx = context.WithoutCancel(ctx)
	for _, hash := range hashes {
		_ = d.Files().Remove(ctx, hash)
	}
}

// ReadForm reads a multipart registration (the API's and the console's
// form): text fields by the Draft's JSON names and "file" parts, each
// stored as it streams in. It returns the hashes of files new with this
// request, also on error: the caller removes them with RemoveFiles when
// the request fails. Files are checked for size and type as they arrive
// (ErrTooLarge, ErrFileType); put them after the text fields.
func ReadForm(w http.ResponseWriter, r *http.Request, d *incident.Desk) (incident.Draft, []string, error) {
	cfg := d.Config()
	limit := int64(cfg.MaxAttachments)*cfg.MaxAttachment + maxJSON
	mr, err := multipartOf(w, r, limit)
	if err != nil {
		return incident.Draft{}, nil, err
	}
	var dr incident.Draft
	var created []string
	fields := map[string]*string{"org": &dr.Org, "site": &dr.Site, "department": &dr.Department, "customer_name": &dr.CustomerName,
		"customer_contact": &dr.CustomerContact, "remark_no": &dr.RemarkNo, "description": &dr.Description}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return dr, created, nil
		}
		if err != nil {
			return dr, created, fmt.Errorf("%w: form: %v", errBadRequest, err)
		}
		name := part.FormName()
		if name == "file" {
			if part.FileName() == "" {
				continue // an empty file input
			}
			if len(dr.Attachments) >= cfg.MaxAttachments {
				return dr, created, &incident.FieldErrors{Fields: map[string]string{"attachments": fmt.Sprintf("at most %d files", cfg.MaxAttachments)}}
			}
			att, isNew, err := d.Files().Put(r.Context(), part.FileName(), part)
			if err != nil {
				return dr, created, err
			}
			if isNew {
				created = append(created, att.Hash)
			}
			dr.Attachments = append(dr.Attachments, att)
			continue
		}
		b, err := io.ReadAll(io.LimitReader(part, maxJSON+1))
		if err != nil {
			return dr, created, fmt.Errorf("%w: form: %v", errBadRequest, err)
		}
		if len(b) > maxJSON {
			return dr, created, fmt.Errorf("%w: field %s too long", errBadRequest, name)
		}
		v := string(b)
		switch name {
		case "channel":
			dr.Channel = incident.Channel(v)
		case "type":
			dr.Type = incident.Type(v)
		case "source_alert":
			dr.SourceAlert, _ = strconv.ParseInt(v, 10, 64)
		default:
			if dst, ok := fields[name]; ok {
				*dst = v
			}
		}
	}
}

// multipartOf streams a multipart body of at most limit bytes: files go
// to the store part by part, never whole into memory or temp files.
func multipartOf(w http.ResponseWriter, r *http.Request, limit int64) (*multipart.Reader, error) {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, fmt.Errorf("%w: want multipart/form-data: %v", errBadRequest, err)
	}
	return mr, nil
}

func (h handlers) pass(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	var b struct{ To, Comment string }
	return h.step(w, r, &b, func(id int64) (incident.Incident, error) { return h.d.PassOn(r.Context(), p, id, b.To, b.Comment) })
}

func (h handlers) update(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	var b struct{ Comment string }
	return h.step(w, r, &b, func(id int64) (incident.Incident, error) { return h.d.Update(r.Context(), p, id, b.Comment) })
}

func (h handlers) close(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	var b struct {
		Outcome     string `json:"outcome"`
		CalledBack  bool   `json:"called_back"`
		DelayReason string `json:"delay_reason"`
	}
	return h.step(w, r, &b, func(id int64) (incident.Incident, error) {
		return h.d.Close(r.Context(), p, id, b.Outcome, b.CalledBack, b.DelayReason)
	})
}

func (h handlers) reopen(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	var b struct{ Comment string }
	return h.step(w, r, &b, func(id int64) (incident.Incident, error) { return h.d.Reopen(r.Context(), p, id, b.Comment) })
}

func (h handlers) step(w http.ResponseWriter, r *http.Request, body any, fn func(id int64) (incident.Incident, error)) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if err := decode(w, r, body); err != nil {
		return err
	}
	in, err := fn(id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, IncidentAnswer{Incident: in})
	return nil
}

func (h handlers) attach(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if _, err := h.d.Get(r.Context(), p, id); err != nil {
		return err // out of scope: 404 before a byte is read
	}
	cfg := h.d.Config()
	mr, err := multipartOf(w, r, int64(cfg.MaxAttachments)*cfg.MaxAttachment+maxJSON)
	if err != nil {
		return err
	}
	var in incident.Incident
	n := 0
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: form: %v", errBadRequest, err)
		}
		if part.FormName() != "file" || part.FileName() == "" {
			continue
		}
		if in, err = h.d.Attach(r.Context(), p, id, part.FileName(), part); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("%w: no \"file\" part", errBadRequest)
	}
	writeJSON(w, http.StatusOK, IncidentAnswer{Incident: in})
	return nil
}

// file serves an attachment of an incident in scope. Images are shown
// inline for a preview; the sandbox CSP keeps a PDF's or image's content
// from running anything.
func (h handlers) file(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	in, err := h.d.Get(r.Context(), p, id)
	if err != nil {
		return err
	}
	hash := r.PathValue("hash")
	for _, a := range in.Attachments {
		if a.Hash != hash {
			continue
		}
		f, err := h.d.Files().Open(r.Context(), hash)
		if err != nil {
			return err
		}
		defer f.Close()
		w.Header().Set("Content-Type", a.Type)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'; img-src 'self'")
		w.Header().Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": a.Name}))
		w.Header().Set("Content-Length", strconv.FormatInt(a.Size, 10))
		_, err = io.Copy(w, f)
		return err
	}
	return incident.ErrNotFound
}

func (h handlers) fromAlert(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	id, err := pathID(r, "alert")
	if err != nil || h.alerts == nil {
		return incident.ErrNotFound
	}
	a, _, err := h.alerts.Get(r.Context(), id)
	if err != nil || !p.Scope.Allows(a.Subject.Org, a.Subject.Site) {
		return incident.ErrNotFound
	}
	dr, err := h.d.FromAlert(a)
	if err != nil {
		return err
	}
	// The caller may name the department, type or add to the description.
	var b struct {
		Department  string `json:"department"`
		Type        string `json:"type"`
		Description string `json:"description"`
	}
	if r.ContentLength != 0 {
		if err := decode(w, r, &b); err != nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "EOF") {
			return err
		}
	}
	if b.Department != "" {
		dr.Department = b.Department
	}
	if b.Type != "" {
		dr.Type = incident.Type(b.Type)
	}
	if b.Description != "" {
		dr.Description = b.Description + "\n\n" + dr.Description
	}
	in, err := h.d.Register(r.Context(), p, dr)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, IncidentAnswer{Incident: in})
	return nil
}

// Locator finds the organisation and site of the incident a route
// addresses ({id}), so the access router answers 404 to a principal whose
// scope does not reach it before any handler runs.
func Locator(d *incident.Desk) *access.Locator {
	return &access.Locator{Kind: "incident", Find: func(r *http.Request) (access.Place, error) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil || id <= 0 {
			return access.Place{}, fmt.Errorf("%w: incident id %q", access.ErrInvalid, r.PathValue("id"))
		}
		in, err := d.Get(r.Context(), access.Principal{Scope: access.Everything}, id)
		if errors.Is(err, incident.ErrNotFound) {
			return access.Place{}, access.ErrNotFound
		}
		if err != nil {
			return access.Place{}, err
		}
		return access.Place{Org: in.Org, Site: in.Site}, nil
	}}
}

// DeskAnswer describes the desk's vocabulary for clients and forms.
type DeskAnswer struct {
	Departments  []incident.Department `json:"departments"`
	Types        []incident.Type       `json:"types"`
	Channels     []incident.Channel    `json:"channels"`
	DelayReasons []string              `json:"delay_reasons"`
}

func (h handlers) desk(w http.ResponseWriter, _ *http.Request, _ access.Principal) error {
	c := h.d.Config()
	writeJSON(w, http.StatusOK, DeskAnswer{Departments: c.Departments, Types: c.AllTypes(), Channels: incident.Channels, DelayReasons: c.DelayReasons})
	return nil
}
