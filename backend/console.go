package backend

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/account"
	"github.com/semko/semko/backend/fleet/fleetapi"
	"github.com/semko/semko/backend/web"
	"github.com/semko/semko/backend/web/adminpages"
	"github.com/semko/semko/backend/web/alertpages"
	"github.com/semko/semko/backend/web/figures"
	"github.com/semko/semko/backend/web/fleetpages"
	"github.com/semko/semko/internal/influxdb"
)

// ConsoleConfig is the `console:` section: the web console and the
// accounts behind it.
type ConsoleConfig struct {
	// Store is the SQLite file of accounts, sessions, tokens and the
	// audit log; default <data_dir>/accounts.db.
	Store string `yaml:"store"`
	// PublicURL is the console's address as people reach it, e.g.
	// https://semko.example.org; alert notices link to
	// <public_url>/alerts/<id>. Empty: notices carry no link.
	PublicURL string `yaml:"public_url"`
	// SecureCookies marks session cookies Secure even over plain HTTP
	// (behind a TLS proxy). Over HTTPS they always are.
	SecureCookies bool `yaml:"secure_cookies"`
	// SessionTTL is how long a sign-in lasts; default 12h.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// BcryptCost; default 10. Tests lower it.
	BcryptCost int `yaml:"bcrypt_cost"`
	// GrafanaURL is where the manager's home page links dashboards
	// (empty: no links).
	GrafanaURL string `yaml:"grafana_url"`
}

// consoleParts are the account service, the access router every HTTP
// route goes through, and the console.
type consoleParts struct {
	store   accountStore
	acc     *account.Service
	router  *access.Router
	console *web.Console
}

// newAccess opens the account store and builds the access router: personal
// API tokens, then session cookies, then (added by api.New) the bootstrap
// token. Every change a principal makes is written to the audit log.
func (a *App) newAccess() error {
	c := a.cfg.Console
	path := c.Store
	if path == "" {
		path = filepath.Join(a.cfg.DataDir, "accounts.db")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("account store dir: %w", err)
	}
	store, err := a.openAccountStore(context.Background(), path)
	if err != nil {
		return err
	}
	a.sup.add("accounts", resource{close: func() error {
		if err := store.Close(); err != nil {
			return fmt.Errorf("account store close: %w", err)
		}
		return nil
	}})
	acc, err := account.New(account.Options{
		Store: store, SessionTTL: c.SessionTTL, BcryptCost: c.BcryptCost,
		Logger: a.log.With("part", "accounts"), Registerer: a.metrics,
	})
	if err != nil {
		return err
	}
	router := access.NewRouter(access.Options{
		Authenticators: []access.Authenticator{acc.TokenAuthenticator(), acc.SessionAuthenticator()},
		SignIn:         "/signin",
		OnChange: func(r *http.Request, pattern string, status int) {
			_, path, _ := strings.Cut(pattern, " ")
			acc.Audit(r, r.Method+" "+path, r.URL.Path, fmt.Sprintf("status %d", status))
		},
	})
	a.console = consoleParts{store: store, acc: acc, router: router}
	return nil
}

// newConsole registers the console's pages on the router (after api.New
// registered the API routes).
func (a *App) newConsole() error {
	con, err := web.New(web.Options{
		Router: a.console.router, Accounts: a.console.acc, Secure: a.cfg.Console.SecureCookies,
		Logger: a.log.With("part", "console"),
	})
	if err != nil {
		return err
	}
	a.console.console = con
	if a.alerts.manager != nil {
		if err := alertpages.Register(con, a.alerts.manager); err != nil {
			return err
		}
	}
	fp := fleetpages.Options{
		Fleet:  fleetapi.Options{DB: a.fleet.db, Live: a.ingest.Devices, Logger: a.log.With("part", "console")},
		Alerts: a.alerts.manager,
	}
	if a.health.diag != nil {
		fp.SelfTest = a.health.diag.SelfTestDevice
	}
	if err := fleetpages.Register(con, fp); err != nil {
		return err
	}
	if err := adminpages.Register(con); err != nil {
		return err
	}
	db, err := influxdb.New(influxdb.Options{URL: a.cfg.Influx.URL, Token: a.cfg.Influx.Token, Org: a.cfg.Influx.Org, Bucket: a.cfg.Influx.Bucket})
	if err != nil {
		return fmt.Errorf("console figures: %w", err)
	}
	a.sup.add("console-figures", resource{close: func() error { db.Close(); return nil }})
	return figures.Register(con, figures.Options{DB: db, GrafanaURL: a.cfg.Console.GrafanaURL})
}

// Accounts is the account service (creating accounts, tokens).
func (a *App) Accounts() *account.Service { return a.console.acc }

// Console is the web console, for other parts to add their pages.
func (a *App) Console() *web.Console { return a.console.console }

// Router is the access router every HTTP route is registered on.
func (a *App) Router() *access.Router { return a.console.router }
