package report

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/access"
)

// Handler answers GET /api/v1/reports with a report in the caller's
// scope. Query parameters:
//
//	org, site, operator, service   the scope (org required unless the caller sees everything)
//	period   week | month | quarter | today | custom (default week)
//	date     YYYY-MM-DD, a day inside the period (default today)
//	from,to  YYYY-MM-DD, first and last day of a custom period
//	format   pdf | csv | xlsx (default pdf)
//	lang     en | bg | ru (default the account's language, else en)
//
// The caller is the request's access.Principal. A request without one got
// through the API's bearer-token check only, which is the bootstrap admin
// token: it sees everything.
type Handler struct {
	Builder *Builder
	// Zone is the time zone of a scope (its site's, else its
	// organisation's); nil or a nil answer means UTC.
	Zone func(org, site string) *time.Location
	Log  *slog.Logger
	// Rejected counts refused requests by reason; may be nil.
	Rejected *prometheus.CounterVec
}

// NewRejectedCounter is the metric Handler.Rejected expects.
func NewRejectedCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "semko_report_requests_rejected_total",
		Help: "Report requests refused, by reason (period, lang, format, scope, not_found).",
	}, []string{"reason"})
}

// ParseRequest reads a report request from query values, in the caller's
// scope. now is today for a period without a date.
func ParseRequest(q map[string][]string, caller access.Principal, zone func(org, site string) *time.Location, now time.Time) (Request, string, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	r := Request{Org: get("org"), Site: get("site"), Operator: get("operator"), Service: get("service"),
		Lang: cmp.Or(get("lang"), caller.Lang, "en"), Caller: caller.Scope}
	format := cmp.Or(get("format"), "pdf")
	if !slices.Contains(Formats, format) {
		return r, format, fmt.Errorf("%w: %q (pdf, csv or xlsx)", ErrFormat, format)
	}
	loc := time.UTC
	if zone != nil {
		if z := zone(r.Org, r.Site); z != nil {
			loc = z
		}
	}
	day := func(k string) (time.Time, error) {
		t, err := time.ParseInLocation(time.DateOnly, get(k), loc)
		if err != nil {
			return t, fmt.Errorf("%w: %s must be a date YYYY-MM-DD", ErrPeriod, k)
		}
		return t, nil
	}
	kind := Kind(cmp.Or(get("period"), string(Week)))
	var err error
	if kind == Custom {
		var from, to time.Time
		if from, err = day("from"); err != nil {
			return r, format, err
		}
		if to, err = day("to"); err != nil {
			return r, format, err
		}
		r.Period, err = CustomPeriod(from, to, loc)
	} else {
		at := now.In(loc)
		if get("date") != "" {
			if at, err = day("date"); err != nil {
				return r, format, err
			}
		}
		r.Period, err = NewPeriod(kind, at, loc)
	}
	if err != nil {
		return r, format, err
	}
	return r, format, r.Check()
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	caller, ok := access.FromContext(r.Context())
	if !ok {
		caller = access.Principal{Account: "bootstrap", Role: access.Admin, Scope: access.Everything}
	}
	now := time.Now()
	if h.Builder.Now != nil {
		now = h.Builder.Now()
	}
	req, format, err := ParseRequest(r.URL.Query(), caller, h.Zone, now)
	if err == nil {
		var rep *Report
		if rep, err = h.Builder.Build(r.Context(), req); err == nil {
			var buf bytes.Buffer
			if err = rep.Write(&buf, format); err == nil {
				w.Header().Set("Content-Type", ContentType[format])
				w.Header().Set("Content-Disposition", `attachment; filename="`+FileName(req, format)+`"`)
				w.Header().Set("Cache-Control", "no-store")
				_, _ = w.Write(buf.Bytes())
				return
			}
		}
	}
	status, reason := http.StatusInternalServerError, ""
	switch {
	case errors.Is(err, ErrNotFound):
		status, reason = http.StatusNotFound, "not_found"
	case errors.Is(err, ErrPeriod):
		status, reason = http.StatusBadRequest, "period"
	case errors.Is(err, ErrLang):
		status, reason = http.StatusBadRequest, "lang"
	case errors.Is(err, ErrFormat):
		status, reason = http.StatusBadRequest, "format"
	case errors.Is(err, ErrScope):
		status, reason = http.StatusBadRequest, "scope"
	}
	msg := err.Error()
	if status == http.StatusNotFound {
		msg = "no such scope"
	}
	if reason != "" && h.Rejected != nil {
		h.Rejected.WithLabelValues(reason).Inc()
	}
	if status == http.StatusInternalServerError && h.Log != nil {
		h.Log.Warn("report failed", "err", err)
		msg = "report could not be built, try again"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// FileName names a report file: semko-<org>-<kind>-<start>.<format>.
func FileName(r Request, format string) string {
	scope := cmp.Or(r.Site, r.Org, "all")
	name := fmt.Sprintf("semko-%s-%s-%s.%s", scope, r.Period.Kind, r.Period.Start.Format(time.DateOnly), format)
	// Names are tag values; keep the header safe whatever they hold.
	b := []byte(name)
	for i, c := range b {
		if !(c == '-' || c == '.' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			b[i] = '_'
		}
	}
	return string(b)
}
