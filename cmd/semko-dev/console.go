package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/account"
	"github.com/semko/semko/firmware-sim/fleet"
)

// consoleAccounts makes one console account per role on the first run,
// each with a random password, and writes the names and passwords to path
// (mode 0600, under var/, never committed). The admin sees everything; the
// other roles see the first organisation of the simulated fleet. On later
// runs the accounts exist and the file stays as it is.
func consoleAccounts(ctx context.Context, app *backend.App, model *fleet.Model, path string) (created bool, err error) {
	acc := app.Accounts()
	if list, err := acc.Store().Accounts(ctx); err != nil || len(list) > 0 {
		return false, err
	}
	org := model.Orgs[0].ID
	var b strings.Builder
	fmt.Fprintf(&b, "# Console accounts made by make run; sign in at the console with any of them.\n")
	fmt.Fprintf(&b, "# Every role but admin sees organisation %s only.\n", org)
	for _, role := range access.Roles {
		name := strings.ReplaceAll(string(role), "_", "-")
		pw := randomPassword()
		scope := access.Scope{Orgs: []string{org}}
		if role == access.Admin {
			scope = access.Everything
		}
		if err := acc.Create(ctx, account.Account{Name: name, Role: role, Scope: scope}, pw); err != nil && !errors.Is(err, account.ErrExists) {
			return false, fmt.Errorf("console account %s: %w", name, err)
		}
		fmt.Fprintf(&b, "%-18s %-18s %s\n", name, role, pw)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}

func randomPassword() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}
