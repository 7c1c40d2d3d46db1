// Package api is the backend's HTTP interface: health and readiness probes,
// Prometheus metrics, and a small JSON API for integrators (activations)
// and support (device states, the intake summary). Everything under /api/
// needs the bearer token.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/fleet/live"
	"github.com/semko/semko/backend/intake/ingest"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/protocol"
)

// ErrOptions is returned by New for an incomplete Options.
var ErrOptions = errors.New("invalid api options")

// Activator opens a vote window on a device. It returns an error wrapping
// registry.ErrUnknownDevice for a device the fleet does not know (the API
// answers 404), one that protocol.Permanent reports for a bad request
// (400), and anything else for trouble on the way (503).
type Activator interface {
	Activate(ctx context.Context, device string, a protocol.Activate) error
}

// ActivatorFunc adapts a function to Activator.
type ActivatorFunc func(ctx context.Context, device string, a protocol.Activate) error

// Activate calls f.
func (f ActivatorFunc) Activate(ctx context.Context, device string, a protocol.Activate) error {
	return f(ctx, device, a)
}

// Options configures New. Token is required; a nil Ready means always
// ready, a nil Gatherer leaves /metrics out, a nil Activator makes
// activations answer 503, nil Devices and Summary answer empty.
type Options struct {
	// Token is the bearer token for /api/...; compared in constant time.
	Token     string
	Ready     func() error
	Gatherer  prometheus.Gatherer
	Activator Activator
	Devices   func() []live.DeviceState
	Summary   func() ingest.Summary
	Logger    *slog.Logger
	// Routes are further endpoints other backend parts serve (alerts,
	// device management, configuration). Each is mounted on the access
	// router with its Rule; patterns use net/http's syntax, e.g. "GET
	// /api/v1/alerts".
	Routes []Route
	// Router is the backend's access router the routes are registered
	// on; nil makes one that knows only the bootstrap Token. The bootstrap
	// token's authenticator is appended to it either way.
	Router *access.Router
	// Device locates a device by its {id} for the activation rule (an
	// integrator activates the keypads of its scope only); nil checks no
	// scope (tests of the API alone).
	Device *access.Locator
}

// Route is one endpoint and who may call it (see access.Rule). A route
// without a valid rule makes New fail.
type Route struct {
	Pattern string
	Handler http.Handler
	Rule    access.Rule
}

// maxBody bounds request bodies: an activation is far below a payload.
const maxBody = protocol.MaxPayload

type server struct {
	opts      Options
	log       *slog.Logger
	tokenHash [sha256.Size]byte
}

// New returns the HTTP handler. Routes:
//
//	GET  /healthz                       200 "ok" while the process serves
//	GET  /readyz                        200 {"status":"ready"} or 503 with the reason
//	GET  /metrics                       Prometheus exposition of Gatherer
//	POST /api/v1/devices/{id}/activate  body protocol.Activate; 202, 400, 401, 404
//	GET  /api/v1/devices                live state of every device
//	GET  /api/v1/summary                the intake summary
func New(opts Options) (http.Handler, error) {
	if opts.Token == "" {
		return nil, fmt.Errorf("%w: Token is required", ErrOptions)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &server{opts: opts, log: opts.Logger, tokenHash: sha256.Sum256([]byte(opts.Token))}
	mux := opts.Router
	if mux == nil {
		mux = access.NewRouter(access.Options{})
	}
	mux.AddAuthenticator(access.AuthenticatorFunc(s.bootstrap))
	for _, rt := range opts.Routes {
		if !access.IsAPI(rt.Pattern) {
			return nil, fmt.Errorf("%w: route %q is not under /api/", ErrOptions, rt.Pattern)
		}
		if err := rt.Rule.Check(); err != nil {
			return nil, fmt.Errorf("%w: route %q: %v", ErrOptions, rt.Pattern, err)
		}
	}
	public := access.Rule{Public: true}
	mux.HandleFunc("GET /healthz", public, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", public, s.ready)
	if opts.Gatherer != nil {
		mux.Handle("GET /metrics", public, promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
			ErrorLog: slogPrinter{s.log}, ErrorHandling: promhttp.ContinueOnError,
		}))
	}
	mux.HandleFunc("POST /api/v1/devices/{id}/activate", access.Allow(access.Admin, access.Integrator).At(opts.Device), s.activate)
	mux.HandleFunc("GET /api/v1/devices", access.Allow(access.Staff...), s.devices)
	mux.HandleFunc("GET /api/v1/summary", access.Allow(access.Admin), s.summary)
	for _, rt := range opts.Routes {
		mux.Handle(rt.Pattern, rt.Rule, rt.Handler)
	}
	// Anything else under /api/ answers in JSON, after authentication so
	// that the API's shape is not visible without credentials.
	mux.HandleFunc("/api/", access.Rule{Any: true}, func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint")
	})
	return mux, nil
}

// bootstrap recognises SEMKO_API_TOKEN, the admin token that exists
// before any account. Both sides are hashed first so the comparison takes
// the same time whatever the length. Any other bearer token is wrong
// (personal tokens are recognised by the account service before this).
func (s *server) bootstrap(r *http.Request) (access.Principal, bool, error) {
	scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return access.Principal{}, false, nil
	}
	got := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) != 1 {
		return access.Principal{}, false, errors.New("missing or wrong bearer token")
	}
	return access.Principal{Account: "bootstrap", Role: access.Admin, Scope: access.Everything}, true, nil
}

func (s *server) ready(w http.ResponseWriter, _ *http.Request) {
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *server) activate(w http.ResponseWriter, r *http.Request) {
	device := r.PathValue("id")
	if err := protocol.ValidateDeviceID(device); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxBody))
			return
		}
		writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	// Decode also insists on "v": a client written for another version of
	// the contract is told so instead of being guessed at.
	a, err := protocol.Decode[protocol.Activate](body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if s.opts.Activator == nil {
		writeError(w, http.StatusServiceUnavailable, "activation is not configured")
		return
	}
	err = s.opts.Activator.Activate(r.Context(), device, a)
	switch {
	case err == nil:
		s.log.Info("api: activation sent", "device", device, "activation", a.ID)
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted", "device": device, "id": a.ID})
	case errors.Is(err, registry.ErrUnknownDevice):
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown device %q", device))
	case protocol.Permanent(err):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		s.log.Warn("api: activation failed", "device", device, "activation", a.ID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "activation not sent, try again")
	}
}

// devices lists the live state of the devices in the caller's scope.
func (s *server) devices(w http.ResponseWriter, r *http.Request) {
	devs := []live.DeviceState{}
	if s.opts.Devices != nil {
		scope := access.ScopeOf(r.Context())
		for _, d := range s.opts.Devices() {
			if scope.Allows(d.Placement.Org, d.Placement.Site) {
				devs = append(devs, d)
			}
		}
	}
	writeJSON(w, http.StatusOK, devs)
}

func (s *server) summary(w http.ResponseWriter, _ *http.Request) {
	var sum ingest.Summary
	if s.opts.Summary != nil {
		sum = s.opts.Summary()
	}
	writeJSON(w, http.StatusOK, sum)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	// The status is sent; an encoding failure can only be a dropped client.
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// slogPrinter lets promhttp report through the injected logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Error("api: metrics", "err", fmt.Sprint(v...)) }
