package edge

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/semko/semko/protocol"
)

// The local HTTP endpoint, for the queue system on the counter's network:
//
//	POST /activate  protocol.Activate as JSON ("v" may be omitted) -> 202
//	GET  /healthz   200 "ok"
//	GET  /status    Stats as JSON

func (a *Agent) httpServer() *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /activate", a.handleActivate)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, a.Stats())
	})
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
}

func (a *Agent) handleActivate(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, protocol.MaxPayload)
	var act protocol.Activate
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&act); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body is not an activation JSON object: " + err.Error()})
		return
	}
	if dec.More() {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "trailing data after the JSON object"})
		return
	}
	if act.V == 0 {
		act.V = protocol.Version
	}
	if err := act.Validate(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if err := a.Activate(r.Context(), act); err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, ErrKeypad) {
			// The window is open and recorded; only the keypad missed ARM.
			status = http.StatusBadGateway
		}
		writeJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"id": act.ID, "status": "open"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
