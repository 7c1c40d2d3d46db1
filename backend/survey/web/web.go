// Package web serves the survey's public pages: the score buttons, the
// reason questions, the QR landing and the unsubscribe page. They are
// meant to face the internet on their own listener (survey.addr) while
// the console and the API stay internal, so they are small, need no
// JavaScript and carry a strict CSP, and every request passes a
// per-address rate limit. Bad input gets a clear page in the customer's
// language and a count in semko_survey_rejected_total.
package web

import (
	"bytes"
	"cmp"

	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/survey"
	"github.com/semko/semko/backend/survey/engine"
)

//go:embed page.html static/survey.css
var files embed.FS

var tmpl = template.Must(template.ParseFS(files, "page.html"))

// Rejection reasons, the label of semko_survey_rejected_total.
const (
	RejectTampered = "tampered"
	RejectExpired  = "expired"
	RejectReplayed = "replayed"
	RejectScore    = "score"
	RejectComment  = "comment"
	RejectMarkup   = "markup"
	RejectReasons  = "reasons"
	RejectFlood    = "flood"
	RejectNotFound = "notfound"
)

var rejectReasons = []string{RejectTampered, RejectExpired, RejectReplayed, RejectScore, RejectComment, RejectMarkup, RejectReasons, RejectFlood, RejectNotFound}

// VoterCookie names the cookie that tells one scanning device from
// another.
const VoterCookie = "semko_voter"

// Options configures New.
type Options struct {
	Engine *engine.Engine
	// Rate and Burst limit requests per client address (IPv4, or IPv6
	// /64): Rate per second on average. Defaults 0.5 and 20.
	Rate  float64
	Burst int
	// MaxClients bounds the addresses the limiter remembers; default
	// 10,000.
	MaxClients int
	// TrustProxy takes the client address from X-Forwarded-For's last
	// entry (only behind one reverse proxy that sets it).
	TrustProxy bool
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Handler serves the pages.
type Handler struct {
	o        Options
	e        *engine.Engine
	css      []byte
	rejected *prometheus.CounterVec
	limit    *limiter
	h        http.Handler
}

// New builds the handler.
func New(o Options) (*Handler, error) {
	if o.Engine == nil {
		return nil, errors.New("survey web: Engine is required")
	}
	o.Rate = cmp.Or(o.Rate, 0.5)
	o.Burst = cmp.Or(o.Burst, 20)
	o.MaxClients = cmp.Or(o.MaxClients, 10_000)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	css, err := files.ReadFile("static/survey.css")
	if err != nil {
		return nil, fmt.Errorf("survey web: %w", err)
	}
	h := &Handler{o: o, e: o.Engine, css: css, limit: newLimiter(o.Rate, o.Burst, o.MaxClients),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "semko_survey_rejected_total",
			Help: "Survey requests refused, by reason: tampered or expired link, replayed token, score out of range, comment too long or with markup, unknown reason, flood from one address, unknown survey.",
		}, []string{"reason"})}
	for _, r := range rejectReasons {
		h.rejected.WithLabelValues(r)
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(h.rejected); err != nil {
			return nil, fmt.Errorf("survey web metrics: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /survey.css", h.serveCSS)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("GET /s/{tok}", h.link)
	mux.HandleFunc("POST /v/{tok}", h.vote)
	mux.HandleFunc("GET /a/{tok}", h.answerPage)
	mux.HandleFunc("POST /a/{tok}", h.reasons)
	mux.HandleFunc("GET /q/{tok}", h.scan)
	mux.HandleFunc("GET /u/{tok}", h.unsubscribePage)
	mux.HandleFunc("POST /u/{tok}", h.unsubscribe)
	h.h = http.NewCrossOriginProtection().Handler(mux)
	return h, nil
}

// ServeHTTP applies the rate limit and the security headers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	// The links carry tokens: no referrer may leak them.
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	if !h.limit.allow(clientKey(r, h.o.TrustProxy), time.Now()) {
		h.fail(w, r, http.StatusTooManyRequests, RejectFlood, langOf(r, ""), "")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	h.h.ServeHTTP(w, r)
}

func (h *Handler) serveCSS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(h.css)
}

// view is what the templates get.
type view struct {
	T          page
	Org        string
	Langs      []langLink
	Question   string
	Action     string
	Scores     []int
	YourScore  string
	Reasons    []reasonView
	CanConsent bool
	Heading    string
	Message    string
	Error      bool
}

type langLink struct{ Code, Name string }
type reasonView struct{ Code, Name string }

var langLinks = []langLink{{"bg", "Български"}, {"ru", "Русский"}, {"en", "English"}}

func langOf(r *http.Request, def string) string {
	if l := r.FormValue("lang"); l != "" {
		return survey.Lang(l, "bg")
	}
	if def != "" {
		return def
	}
	for part := range strings.SplitSeq(r.Header.Get("Accept-Language"), ",") {
		code := strings.TrimSpace(strings.SplitN(strings.SplitN(part, ";", 2)[0], "-", 2)[0])
		if l := survey.Lang(code, ""); l != "" {
			return l
		}
	}
	return "bg"
}

func (h *Handler) newView(lang, org string) view {
	t := pageFor(lang)
	return view{T: t, Org: org, Langs: langLinks, Question: fmt.Sprintf(t.Question, org)}
}

func (h *Handler) render(w http.ResponseWriter, status int, name string, v view) {
	var buf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&buf, name, v); err != nil {
		h.o.Logger.Error("survey page", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail shows a clear page and counts the reason (an empty reason is an
// internal error: logged, not counted as the customer's fault).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, reason, lang, org string) {
	v := h.newView(lang, cmp.Or(org, "Semko"))
	key := reason
	if reason == "" {
		key = "internal"
	} else {
		h.rejected.WithLabelValues(reason).Inc()
	}
	v.Heading, v.Message, v.Error = v.T.Title, v.T.Errors[key], status >= 400
	h.render(w, status, "message", v)
}

// failErr maps an error to its page.
func (h *Handler) failErr(w http.ResponseWriter, r *http.Request, err error, lang, org string) {
	switch {
	case errors.Is(err, survey.ErrExpired):
		h.fail(w, r, http.StatusGone, RejectExpired, lang, org)
	case errors.Is(err, survey.ErrTampered):
		h.fail(w, r, http.StatusBadRequest, RejectTampered, lang, org)
	case errors.Is(err, survey.ErrReplayed):
		h.fail(w, r, http.StatusConflict, RejectReplayed, lang, org)
	case errors.Is(err, engine.ErrNoScore):
		h.fail(w, r, http.StatusBadRequest, RejectScore, lang, org)
	case errors.Is(err, survey.ErrMarkup):
		h.fail(w, r, http.StatusBadRequest, RejectMarkup, lang, org)
	case errors.Is(err, survey.ErrNotFound), errors.Is(err, engine.ErrUnknown):
		h.fail(w, r, http.StatusNotFound, RejectNotFound, lang, org)
	case errors.Is(err, survey.ErrInvalid) && strings.Contains(err.Error(), "reason"):
		h.fail(w, r, http.StatusBadRequest, RejectReasons, lang, org)
	case errors.Is(err, survey.ErrInvalid):
		h.fail(w, r, http.StatusBadRequest, RejectComment, lang, org)
	default:
		h.o.Logger.Error("survey request", "path", r.URL.Path[:min(len(r.URL.Path), 3)], "err", err)
		h.fail(w, r, http.StatusInternalServerError, "", lang, org)
	}
}

func (h *Handler) token(r *http.Request) (survey.Token, error) {
	return h.e.Signer().Decode(r.PathValue("tok"), h.e.Now())
}

// link is an invitation's link: with a score, one click records it and
// shows the reason page; without (SMS), it shows the buttons.
func (h *Handler) link(w http.ResponseWriter, r *http.Request) {
	tok, err := h.token(r)
	if err != nil {
		lang, org := langOf(r, ""), ""
		if errors.Is(err, survey.ErrExpired) {
			// Signed but old: the invitation still says whose and in
			// which language.
			if inv, ierr := h.e.Invitation(r.Context(), tok.Ref); ierr == nil {
				lang, org = langOf(r, inv.Lang), h.e.OrgName(inv.Org)
			}
		}
		h.failErr(w, r, err, lang, org)
		return
	}
	if tok.Kind != survey.TokenAnswer {
		h.failErr(w, r, engine.ErrWrongToken, langOf(r, ""), "")
		return
	}
	if tok.Score == survey.NoScore {
		if a, err := h.e.Answer(r.Context(), engine.AnswerID(tok)); err == nil {
			h.showAnswer(w, r, tok, a, false)
			return
		}
		h.showScores(w, r, tok, "")
		return
	}
	a, isNew, err := h.e.AnswerLink(r.Context(), tok, tok.Score)
	if err != nil {
		h.failErr(w, r, err, langOf(r, ""), "")
		return
	}
	h.showAnswer(w, r, tok, a, !isNew && a.Score != tok.Score)
}

func (h *Handler) showScores(w http.ResponseWriter, r *http.Request, tok survey.Token, lang string) {
	org := ""
	if tok.Kind == survey.TokenAnswer {
		// The invitation names the organisation; its absence is a
		// survey we no longer know.
		inv, err := h.e.Invitation(r.Context(), tok.Ref)
		if err != nil {
			h.failErr(w, r, err, langOf(r, ""), "")
			return
		}
		org, lang = h.e.OrgName(inv.Org), cmp.Or(lang, inv.Lang)
	} else {
		org = h.e.OrgName(h.e.CounterOrg(tok.Ref))
	}
	v := h.newView(langOf(r, lang), org)
	v.Action = "/v/" + r.PathValue("tok")
	v.Scores = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	h.render(w, http.StatusOK, "score", v)
}

// vote takes a score button of the score page (SMS link or QR scan).
func (h *Handler) vote(w http.ResponseWriter, r *http.Request) {
	tok, err := h.token(r)
	lang := langOf(r, "")
	if err != nil {
		h.failErr(w, r, err, lang, "")
		return
	}
	score, err := strconv.Atoi(r.PostFormValue("score"))
	if err != nil || !survey.ValidScore(score) {
		h.fail(w, r, http.StatusBadRequest, RejectScore, lang, "")
		return
	}
	var isNew bool
	var a survey.Answer
	switch tok.Kind {
	case survey.TokenAnswer:
		a, isNew, err = h.e.AnswerLink(r.Context(), tok, score)
	case survey.TokenScan:
		var voter string
		if c, cerr := r.Cookie(VoterCookie); cerr == nil && len(c.Value) == 32 {
			voter = c.Value
		}
		a, isNew, err = h.e.AnswerScan(r.Context(), tok, score, voter)
	default:
		err = engine.ErrWrongToken
	}
	if err != nil {
		h.failErr(w, r, err, lang, "")
		return
	}
	if !isNew && tok.Kind == survey.TokenScan {
		// The same scan token again: one answer per scanned code.
		h.rejected.WithLabelValues(RejectReplayed).Inc()
	}
	_ = a
	// Post/Redirect/Get: a reload shows the page again, sends nothing.
	http.Redirect(w, r, "/a/"+r.PathValue("tok")+"?lang="+lang, http.StatusSeeOther)
}

// answerPage shows the reason questions of a recorded answer, or thanks
// once they are answered.
func (h *Handler) answerPage(w http.ResponseWriter, r *http.Request) {
	tok, err := h.token(r)
	if err != nil {
		h.failErr(w, r, err, langOf(r, ""), "")
		return
	}
	a, err := h.e.Answer(r.Context(), engine.AnswerID(tok))
	if err != nil {
		h.failErr(w, r, err, langOf(r, ""), "")
		return
	}
	h.showAnswer(w, r, tok, a, false)
}

func (h *Handler) showAnswer(w http.ResponseWriter, r *http.Request, tok survey.Token, a survey.Answer, changed bool) {
	v := h.newView(langOf(r, a.Lang), h.e.OrgName(a.Org))
	if changed {
		// The customer clicked another score: the first one stands.
		h.rejected.WithLabelValues(RejectReplayed).Inc()
	}
	if !a.ReasonsAt.IsZero() {
		v.Heading, v.Message = v.T.Thanks, v.T.Already
		h.render(w, http.StatusOK, "message", v)
		return
	}
	v.YourScore = fmt.Sprintf(v.T.YourScore, a.Score)
	v.Action = "/a/" + r.PathValue("tok")
	for _, code := range h.e.Reasons() {
		v.Reasons = append(v.Reasons, reasonView{code, cmp.Or(v.T.Reasons[code], code)})
	}
	v.CanConsent = tok.Kind == survey.TokenAnswer && len(tok.Extra) > 0
	h.render(w, http.StatusOK, "reasons", v)
}

// reasons takes the reason form.
func (h *Handler) reasons(w http.ResponseWriter, r *http.Request) {
	tok, err := h.token(r)
	lang := langOf(r, "")
	if err != nil {
		h.failErr(w, r, err, lang, "")
		return
	}
	// The answer's language and organisation, for any error page too.
	prev, err := h.e.Answer(r.Context(), engine.AnswerID(tok))
	if err != nil {
		h.failErr(w, r, err, lang, "")
		return
	}
	lang, org := langOf(r, prev.Lang), h.e.OrgName(prev.Org)
	if err := r.ParseForm(); err != nil {
		h.fail(w, r, http.StatusRequestEntityTooLarge, RejectComment, lang, org)
		return
	}
	a, isNew, err := h.e.SetReasons(r.Context(), tok, r.PostForm["reason"], r.PostFormValue("comment"), r.PostFormValue("consent") == "yes")
	if err != nil {
		h.failErr(w, r, err, lang, org)
		return
	}
	v := h.newView(langOf(r, a.Lang), h.e.OrgName(a.Org))
	v.Heading, v.Message = v.T.Thanks, v.T.ThanksMore
	if !isNew {
		v.Message = v.T.Already
	}
	h.render(w, http.StatusOK, "message", v)
}

// scan is a counter's QR code: a fresh scan token, and a cookie that
// tells this device from the next.
func (h *Handler) scan(w http.ResponseWriter, r *http.Request) {
	tok, err := h.token(r)
	if err != nil {
		h.failErr(w, r, err, langOf(r, ""), "")
		return
	}
	scanTok, _, err := h.e.Scan(tok)
	if err != nil {
		h.failErr(w, r, err, langOf(r, ""), "")
		return
	}
	if c, err := r.Cookie(VoterCookie); err != nil || len(c.Value) != 32 {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		http.SetCookie(w, &http.Cookie{Name: VoterCookie, Value: hex.EncodeToString(b), Path: "/", MaxAge: 366 * 24 * 3600,
			HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	}
	r.SetPathValue("tok", scanTok)
	st, _ := h.e.Signer().Decode(scanTok, h.e.Now())
	h.showScores(w, r, st, "")
}

func (h *Handler) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	tok, err := h.token(r)
	if err == nil && tok.Kind != survey.TokenUnsubscribe {
		err = engine.ErrWrongToken
	}
	if err != nil {
		h.failErr(w, r, err, langOf(r, ""), "")
		return
	}
	v := h.newView(langOf(r, ""), "Semko")
	v.Action = "/u/" + r.PathValue("tok")
	h.render(w, http.StatusOK, "unsubscribe", v)
}

func (h *Handler) unsubscribe(w http.ResponseWriter, r *http.Request) {
	tok, err := h.token(r)
	lang := langOf(r, "")
	if err == nil {
		err = h.e.Unsubscribe(r.Context(), tok)
	}
	if err != nil {
		h.failErr(w, r, err, lang, "")
		return
	}
	v := h.newView(lang, "Semko")
	v.Heading, v.Message = v.T.Title, v.T.UnsubDone
	h.render(w, http.StatusOK, "message", v)
}

// clientKey is the address a request counts against: the IPv4 address,
// or the /64 of an IPv6 one (one household or phone gets a whole /64).
func clientKey(r *http.Request, trustProxy bool) string {
	addr := r.RemoteAddr
	if trustProxy {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			parts := strings.Split(xff, ",")
			addr = strings.TrimSpace(parts[len(parts)-1])
		}
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String()
}

// limiter is a token bucket per client address, bounded in the number of
// addresses: when full, buckets that have refilled are dropped (they
// carry no state worth keeping), and if none has, the newcomer is
// refused; a flood of addresses must not grow memory.
type limiter struct {
	mu      sync.Mutex
	rate    float64
	burst   float64
	max     int
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst, max int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), max: max, buckets: map[string]*bucket{}}
}

func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.max {
			for k, o := range l.buckets {
				if o.tokens+now.Sub(o.last).Seconds()*l.rate >= l.burst {
					delete(l.buckets, k)
				}
			}
			if len(l.buckets) >= l.max {
				return false
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// RejectedCounter is the counter of one rejection reason, for tests.
func RejectedCounter(h *Handler, reason string) prometheus.Counter {
	return h.rejected.WithLabelValues(reason)
}
