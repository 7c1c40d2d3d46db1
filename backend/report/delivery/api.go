package delivery

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/report"
)

// API is the HTTP side of subscriptions: every account lists, creates and
// deletes its own, within its scope.
//
//	GET    /api/v1/report-subscriptions        the caller's subscriptions
//	POST   /api/v1/report-subscriptions        a JSON Subscription (id, account, scope and created are set here); 201
//	DELETE /api/v1/report-subscriptions/{id}   one of the caller's; 204
//
// Another account's subscription, or a scope outside the caller's, is
// 404, as everything out of scope.
type API struct {
	Store Store
	Log   *slog.Logger
	// Rejected counts refused requests by reason; may be nil.
	Rejected *prometheus.CounterVec
	Now      func() time.Time
}

// NewRejectedCounter is the metric API.Rejected expects.
func NewRejectedCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "semko_report_subscription_requests_rejected_total",
		Help: "Report subscription requests refused, by reason (body, invalid, not_found).",
	}, []string{"reason"})
}

// maxBody bounds a subscription's JSON: 50 recipients fit many times.
const maxBody = 64 << 10

// caller is the request's principal; without one the request passed the
// API's bootstrap token only.
func caller(r *http.Request) access.Principal {
	if p, ok := access.FromContext(r.Context()); ok {
		return p
	}
	return access.Principal{Account: "bootstrap", Role: access.Admin, Scope: access.Everything}
}

// Mine is the subscriptions of account, by ID.
func Mine(r *http.Request, store Store, account string) ([]Subscription, error) {
	all, err := store.Subscriptions(r.Context())
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	out := []Subscription{}
	for _, s := range all {
		if s.Account == account {
			out = append(out, s)
		}
	}
	return out, nil
}

// Create stores s as the caller's subscription, in the caller's scope.
// Errors: ErrInvalid (with the reason), ErrNotFound for a scope outside
// the caller's.
func Create(r *http.Request, store Store, s Subscription, now time.Time) (Subscription, error) {
	p := caller(r)
	s.ID, s.Account, s.Scope, s.Created = 0, p.Account, p.Scope, now.UTC()
	s.Lang = strings.TrimSpace(s.Lang)
	if s.Lang == "" {
		s.Lang = p.Lang
	}
	if s.Lang == "" {
		s.Lang = "en"
	}
	if err := s.Validate(); err != nil {
		if errors.Is(err, report.ErrNotFound) {
			return s, ErrNotFound
		}
		return s, err
	}
	if err := store.Subscribe(r.Context(), &s); err != nil {
		return s, fmt.Errorf("subscribe: %w", err)
	}
	return s, nil
}

// Delete removes the caller's subscription id; another account's is
// ErrNotFound.
func Delete(r *http.Request, store Store, id int64) error {
	mine, err := Mine(r, store, caller(r).Account)
	if err != nil {
		return err
	}
	for _, s := range mine {
		if s.ID == id {
			return store.Unsubscribe(r.Context(), id)
		}
	}
	return ErrNotFound
}

// List answers GET.
func (a *API) List(w http.ResponseWriter, r *http.Request) {
	mine, err := Mine(r, a.Store, caller(r).Account)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, mine)
}

// Create answers POST.
func (a *API) Create(w http.ResponseWriter, r *http.Request) {
	var s Subscription
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		a.reject(w, http.StatusBadRequest, "body", "a JSON subscription: "+err.Error())
		return
	}
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	s, err := Create(r, a.Store, s, now)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, s)
}

// Delete answers DELETE.
func (a *API) Delete(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		a.reject(w, http.StatusNotFound, "not_found", "no such subscription")
		return
	}
	if err := Delete(r, a.Store, id); err != nil {
		a.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		a.reject(w, http.StatusNotFound, "not_found", "no such subscription or scope")
	case errors.Is(err, ErrInvalid):
		a.reject(w, http.StatusBadRequest, "invalid", err.Error())
	default:
		if a.Log != nil {
			a.Log.Warn("report subscriptions", "err", err)
		}
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "try again"})
	}
}

func (a *API) reject(w http.ResponseWriter, status int, reason, msg string) {
	if a.Rejected != nil {
		a.Rejected.WithLabelValues(reason).Inc()
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
