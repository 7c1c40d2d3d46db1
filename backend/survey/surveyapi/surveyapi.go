// Package surveyapi serves the survey's internal endpoints: the contact
// call that sends an invitation, the follow-ups of the responsible people,
// and the counters' QR codes. Every handler asks the request's principal
// (backend/access) first; what is out of its scope, or beyond its role,
// answers 404.
//
//	POST /api/v1/survey/contacts                  {"counter"|"device", "email"|"phone", "lang", "operator", "service"}
//	GET  /api/v1/survey/followups                 ?state=open|closed&org=&site= ; the list and its figures
//	GET  /api/v1/survey/followups/{id}
//	POST /api/v1/survey/followups/{id}/close      {"outcome": "called back, exchange arranged"}
//	POST /api/v1/survey/followups/{id}/notify     {"text": "..."} (empty: the outcome) e-mails the customer
//	GET  /api/v1/survey/counters/{id}/qr.png      ?size=256..1024
//	GET  /api/v1/survey/counters/{id}/qr          a printable page with the code
package surveyapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"strconv"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/survey"
	"github.com/semko/semko/backend/survey/engine"
	"github.com/semko/semko/fleet/registry"
)

// Route is one endpoint: a pattern in net/http's syntax, its handler and
// the access rule the router applies first. The handlers check role and
// scope again themselves (404 when out of scope), so no locator is needed:
// a follow-up's or counter's place is only known after loading it.
type Route struct {
	Pattern string
	Handler http.Handler
	Rule    access.Rule
}

// Roles allowed per action.
var (
	ReadRoles    = []access.Role{access.Admin, access.Manager, access.CustomerService, access.Viewer}
	WriteRoles   = []access.Role{access.Admin, access.Manager, access.CustomerService}
	contactRoles = []access.Role{access.Admin, access.Manager, access.CustomerService, access.Integrator}
	qrRoles      = []access.Role{access.Admin, access.Manager, access.CustomerService, access.Technician}
)

// Routes returns the endpoints.
func Routes(e *engine.Engine, reg func() *registry.Registry, log *slog.Logger) []Route {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := handlers{e: e, reg: reg, log: log}
	return []Route{
		{"POST /api/v1/survey/contacts", http.HandlerFunc(h.contact), access.Allow(contactRoles...)},
		{"GET /api/v1/survey/followups", http.HandlerFunc(h.list), access.Allow(ReadRoles...)},
		{"GET /api/v1/survey/followups/{id}", http.HandlerFunc(h.get), access.Allow(ReadRoles...)},
		{"POST /api/v1/survey/followups/{id}/close", http.HandlerFunc(h.close), access.Allow(WriteRoles...)},
		{"POST /api/v1/survey/followups/{id}/notify", http.HandlerFunc(h.notify), access.Allow(WriteRoles...)},
		{"GET /api/v1/survey/counters/{id}/qr.png", http.HandlerFunc(h.qrPNG), access.Allow(qrRoles...)},
		{"GET /api/v1/survey/counters/{id}/qr", http.HandlerFunc(h.qrPage), access.Allow(qrRoles...)},
	}
}

type handlers struct {
	e   *engine.Engine
	reg func() *registry.Registry
	log *slog.Logger
}

const maxBody = 16 << 10

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func notFound(w http.ResponseWriter) { writeError(w, http.StatusNotFound, "not found") }

// principal returns the caller if it has one of roles; otherwise it
// answers 404 and returns false.
func principal(w http.ResponseWriter, r *http.Request, roles []access.Role) (access.Principal, bool) {
	p, ok := access.FromContext(r.Context())
	if !ok || !slices.Contains(roles, p.Role) {
		notFound(w)
		return p, false
	}
	return p, true
}

// ContactRequest is the body of POST /api/v1/survey/contacts.
type ContactRequest struct {
	Counter  string `json:"counter,omitempty"`
	Device   string `json:"device,omitempty"`
	Email    string `json:"email,omitempty"`
	Phone    string `json:"phone,omitempty"`
	Lang     string `json:"lang,omitempty"`
	Operator string `json:"operator,omitempty"`
	Service  string `json:"service,omitempty"`
}

// ContactAnswer says what became of a contact: "sent", "recent" (invited
// within the period) or "unsubscribed". The last two are answered 200:
// the queue system did nothing wrong.
type ContactAnswer struct {
	Result     string `json:"result"`
	Invitation string `json:"invitation,omitempty"`
	Channel    string `json:"channel,omitempty"`
}

func (h handlers) contact(w http.ResponseWriter, r *http.Request) {
	p, ok := principal(w, r, contactRoles)
	if !ok {
		return
	}
	var req ContactRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	// Scope first: a counter of another organisation does not exist.
	reg := h.reg()
	cid := req.Counter
	if cid == "" {
		if d, ok := reg.Device(req.Device); ok {
			cid = d.Counter
		}
	}
	c, ok := reg.Counter(cid)
	if !ok || !p.Scope.Allows(c.Org, c.Site) {
		notFound(w)
		return
	}
	inv, err := h.e.Invite(r.Context(), survey.Contact{Counter: c.ID, Email: req.Email, Phone: req.Phone, Lang: req.Lang,
		Operator: req.Operator, Service: req.Service})
	switch {
	case errors.Is(err, survey.ErrRecent):
		writeJSON(w, http.StatusOK, ContactAnswer{Result: "recent"})
	case errors.Is(err, survey.ErrUnsubscribed):
		writeJSON(w, http.StatusOK, ContactAnswer{Result: "unsubscribed"})
	case errors.Is(err, engine.ErrNoChannel), errors.Is(err, survey.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		h.log.Warn("survey contact", "counter", c.ID, "err", err)
		writeError(w, http.StatusBadGateway, "invitation not sent: "+err.Error())
	default:
		writeJSON(w, http.StatusAccepted, ContactAnswer{Result: "sent", Invitation: inv.ID, Channel: string(inv.Channel)})
	}
}

// FollowUp is a follow-up as the API shows it.
type FollowUp struct {
	survey.FollowUp
	Overdue bool `json:"overdue"`
	InTime  bool `json:"in_time"`
}

// ListAnswer is the answer of GET /api/v1/survey/followups.
type ListAnswer struct {
	FollowUps []FollowUp   `json:"followups"`
	Stats     engine.Stats `json:"stats"`
}

func (h handlers) view(f survey.FollowUp) FollowUp {
	return FollowUp{FollowUp: f, Overdue: f.State == survey.FollowUpOpen && h.e.Now().After(f.Due), InTime: f.InTime()}
}

func (h handlers) list(w http.ResponseWriter, r *http.Request) {
	p, ok := principal(w, r, ReadRoles)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := survey.FollowUpFilter{State: survey.FollowUpState(q.Get("state")), Org: q.Get("org"), Site: q.Get("site"), Limit: 2000}
	if f.State != "" && f.State != survey.FollowUpOpen && f.State != survey.FollowUpClosed {
		writeError(w, http.StatusBadRequest, "state: open or closed")
		return
	}
	all, err := h.e.FollowUps(r.Context(), f)
	if err != nil {
		h.log.Warn("survey follow-ups", "err", err)
		writeError(w, http.StatusInternalServerError, "store error")
		return
	}
	ans := ListAnswer{FollowUps: []FollowUp{}}
	var in []survey.FollowUp
	for _, x := range all {
		if p.Scope.Allows(x.Org, x.Site) {
			in = append(in, x)
			ans.FollowUps = append(ans.FollowUps, h.view(x))
		}
	}
	ans.Stats = engine.StatsOf(in, h.e.Now())
	writeJSON(w, http.StatusOK, ans)
}

// inScope loads a follow-up the caller may see.
func (h handlers) inScope(w http.ResponseWriter, r *http.Request, roles []access.Role) (survey.FollowUp, bool) {
	p, ok := principal(w, r, roles)
	if !ok {
		return survey.FollowUp{}, false
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		notFound(w)
		return survey.FollowUp{}, false
	}
	f, err := h.e.FollowUp(r.Context(), id)
	if err != nil || !p.Scope.Allows(f.Org, f.Site) {
		notFound(w)
		return f, false
	}
	return f, true
}

func (h handlers) get(w http.ResponseWriter, r *http.Request) {
	if f, ok := h.inScope(w, r, ReadRoles); ok {
		writeJSON(w, http.StatusOK, h.view(f))
	}
}

// CloseRequest is the body of .../close.
type CloseRequest struct {
	Outcome string `json:"outcome"`
}

// NotifyRequest is the body of .../notify.
type NotifyRequest struct {
	Text string `json:"text"`
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return false
	}
	return true
}

func (h handlers) close(w http.ResponseWriter, r *http.Request) {
	f, ok := h.inScope(w, r, WriteRoles)
	if !ok {
		return
	}
	var req CloseRequest
	if !decode(w, r, &req) {
		return
	}
	p, _ := access.FromContext(r.Context())
	f, err := h.e.Close(r.Context(), f.ID, p.Account, req.Outcome)
	switch {
	case errors.Is(err, survey.ErrClosed):
		writeError(w, http.StatusConflict, "already closed")
	case errors.Is(err, survey.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, "store error")
	default:
		writeJSON(w, http.StatusOK, h.view(f))
	}
}

func (h handlers) notify(w http.ResponseWriter, r *http.Request) {
	f, ok := h.inScope(w, r, WriteRoles)
	if !ok {
		return
	}
	var req NotifyRequest
	if !decode(w, r, &req) {
		return
	}
	f, err := h.e.NotifyCustomer(r.Context(), f.ID, req.Text)
	switch {
	case errors.Is(err, engine.ErrNoContact):
		writeError(w, http.StatusConflict, "the customer did not agree to be contacted, or left no e-mail address")
	case errors.Is(err, survey.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		writeError(w, http.StatusBadGateway, err.Error())
	default:
		writeJSON(w, http.StatusOK, h.view(f))
	}
}

func (h handlers) counter(w http.ResponseWriter, r *http.Request) (registry.Counter, bool) {
	p, ok := principal(w, r, qrRoles)
	if !ok {
		return registry.Counter{}, false
	}
	c, ok := h.reg().Counter(r.PathValue("id"))
	if !ok || !p.Scope.Allows(c.Org, c.Site) {
		notFound(w)
		return c, false
	}
	return c, true
}

func (h handlers) qrPNG(w http.ResponseWriter, r *http.Request) {
	c, ok := h.counter(w, r)
	if !ok {
		return
	}
	size := 384
	if s := r.URL.Query().Get("size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 128 || n > 1024 {
			writeError(w, http.StatusBadRequest, "size: 128..1024")
			return
		}
		size = n
	}
	png, err := qrcode.Encode(h.e.CounterURL(c.ID), qrcode.Medium, size)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "qr: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "private, max-age=3600")
	_, _ = w.Write(png)
}

var printTmpl = template.Must(template.New("print").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>QR · {{.Counter}}</title>
<style>body{font-family:system-ui,sans-serif;text-align:center;margin:2rem}img{width:70mm;height:70mm}h1{font-size:1.4rem}p{font-size:1rem}</style>
</head><body><h1>{{.Question}}</h1><img src="qr.png?size=768" alt="QR code of the survey at {{.Counter}}"><p>{{.Counter}} · {{.Org}}</p><p><small>{{.URL}}</small></p></body></html>`))

var printQuestions = map[string]string{
	"bg": "Колко вероятно е да ни препоръчате? Сканирайте кода.",
	"ru": "Насколько вероятно, что вы нас порекомендуете? Отсканируйте код.",
	"en": "How likely are you to recommend us? Scan the code.",
}

func (h handlers) qrPage(w http.ResponseWriter, r *http.Request) {
	c, ok := h.counter(w, r)
	if !ok {
		return
	}
	lang := survey.Lang(r.URL.Query().Get("lang"), "bg")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'")
	err := printTmpl.Execute(w, map[string]string{"Lang": lang, "Question": printQuestions[lang],
		"Counter": c.Name + " (" + c.ID + ")", "Org": h.e.OrgName(c.Org), "URL": h.e.CounterURL(c.ID)})
	if err != nil {
		h.log.Warn("survey qr page", "err", fmt.Sprint(err))
	}
}
