package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/firmware-sim/fleet"
)

func TestConsoleAccounts(t *testing.T) {
	dir := t.TempDir()
	model := fleet.Generate(fleet.Spec{Seed: 3, Orgs: 2})
	cfg := backend.DefaultConfig()
	cfg.DataDir, cfg.FleetFile = filepath.Join(dir, "backend"), filepath.Join(dir, "fleet.yaml")
	cfg.MQTT.Addr, cfg.HTTP.Addr, cfg.HTTP.Token = "127.0.0.1:0", "127.0.0.1:0", "tok"
	cfg.Console.BcryptCost = bcrypt.MinCost
	if err := model.WriteFleetFile(cfg.FleetFile, broker.HashSecret); err != nil {
		t.Fatal(err)
	}
	app, err := backend.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	ctx := context.Background()
	path := filepath.Join(dir, "console-accounts.txt")
	if created, err := consoleAccounts(ctx, app, model, path); err != nil || !created {
		t.Fatalf("first run: %v %v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("accounts file: %v %v, want mode 0600", st, err)
	}
	raw, _ := os.ReadFile(path)
	seen := map[access.Role]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || strings.HasPrefix(line, "#") {
			continue
		}
		_, a, err := app.Accounts().SignIn(ctx, f[0], f[2], "127.0.0.1:1", "en")
		if err != nil || string(a.Role) != f[1] {
			t.Fatalf("sign in as %s: %+v %v", f[0], a, err)
		}
		if a.Role != access.Admin && (a.Scope.All || a.Scope.Orgs[0] != model.Orgs[0].ID) {
			t.Errorf("%s scope %+v", f[0], a.Scope)
		}
		seen[a.Role] = true
	}
	if len(seen) != len(access.Roles) {
		t.Fatalf("roles in the file: %v", seen)
	}
	if created, err := consoleAccounts(ctx, app, model, path); err != nil || created {
		t.Fatalf("second run made accounts again: %v %v", created, err)
	}
	if again, _ := os.ReadFile(path); string(again) != string(raw) {
		t.Fatal("second run rewrote the file")
	}
}
