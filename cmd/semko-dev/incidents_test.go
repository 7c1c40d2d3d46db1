package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/backend/incident"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/testwait"
)

// The simulation registers, passes on and closes incidents through a real
// backend's API, and the refused ones (no remark number) do not stop it.
func TestIncidentSimulation(t *testing.T) {
	dir := t.TempDir()
	model := fleet.Generate(fleet.Spec{Seed: 3, Orgs: 2, SitesPerOrg: 2, CountersPerSite: 1})
	cfg := backend.DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "backend")
	cfg.FleetFile = filepath.Join(dir, "fleet.yaml")
	cfg.MQTT.Addr, cfg.HTTP.Addr, cfg.HTTP.Token = "127.0.0.1:0", "127.0.0.1:0", "dev-test-token"
	cfg.Influx.URL = "http://127.0.0.1:1" // points wait in the spool
	if err := writeFleetFile(model, cfg.FleetFile); err != nil {
		t.Fatal(err)
	}
	withIncidents(&cfg, model)
	cfg.Incidents.Email.Addr = "127.0.0.1:0"
	app, err := backend.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-app.Started():
	case err := <-done:
		t.Fatalf("backend stopped: %v", err)
	}
	cfg.HTTP.Addr = app.HTTPAddr()
	simCtx, stopSim := context.WithCancel(ctx)
	wait := runIncidentsEvery(simCtx, cfg, model, 1, 20*time.Millisecond, slog.New(slog.DiscardHandler))
	defer func() { stopSim(); wait() }()

	testwait.Within(t, time.Minute, "a simulated incident closed", func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+cfg.HTTP.Addr+"/api/v1/incidents?state=closed", nil)
		req.Header.Set("Authorization", "Bearer "+cfg.HTTP.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var l struct{ Incidents []incident.Incident }
		json.NewDecoder(resp.Body).Decode(&l)
		return len(l.Incidents) > 0 && l.Incidents[0].Outcome != ""
	})
}
