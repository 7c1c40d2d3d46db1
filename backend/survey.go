package backend

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/semko/semko/backend/alert/calendar"
	"github.com/semko/semko/backend/alert/notify/email"
	"github.com/semko/semko/backend/api"
	"github.com/semko/semko/backend/survey"
	"github.com/semko/semko/backend/survey/engine"
	"github.com/semko/semko/backend/survey/followpage"
	"github.com/semko/semko/backend/survey/sms"
	"github.com/semko/semko/backend/survey/surveyapi"
	"github.com/semko/semko/backend/survey/web"
)

// SurveyConfig is the `survey:` section: the NPS survey (backend/survey).
// It is off while Addr is empty.
type SurveyConfig struct {
	// Addr is the public listener of the survey pages, apart from the API
	// so it can face the internet while the console and API stay inside.
	Addr     string `yaml:"addr"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// BaseURL is how customers reach Addr (links in invitations and QR
	// codes); default http://<addr>.
	BaseURL string `yaml:"base_url"`
	// Store is the SQLite file; default <data_dir>/survey.db.
	Store string `yaml:"store"`
	// SecretFile holds the key of links and address hashes; default
	// <data_dir>/survey.key, created with 32 random bytes. Losing it
	// voids every link sent and restarts the once-per-period rule.
	SecretFile string `yaml:"secret_file"`
	// Period is the least time between two invitations to one address in
	// an organisation (default 183 days); Orgs overrides it.
	Period time.Duration              `yaml:"period"`
	Orgs   map[string]SurveyOrgConfig `yaml:"orgs"`
	// FollowPassives opens follow-ups for 7-8 as for 0-6.
	FollowPassives bool `yaml:"follow_passives"`
	// Deadline of a follow-up in the site's working hours; default 3h.
	Deadline time.Duration `yaml:"deadline"`
	// Reasons are the reason categories; default information, materials,
	// speed, process, other.
	Reasons []string `yaml:"reasons"`
	// LinkTTL (default 336h), ScanTTL (30m), Retention of a closed
	// follow-up's contact (720h).
	LinkTTL   time.Duration `yaml:"link_ttl"`
	ScanTTL   time.Duration `yaml:"scan_ttl"`
	Retention time.Duration `yaml:"retention"`
	// Rate (requests per second) and Burst per client address on the
	// public pages; defaults 0.5 and 20. TrustProxy reads the address from
	// X-Forwarded-For (only behind one proxy that sets it).
	Rate       float64 `yaml:"rate"`
	Burst      int     `yaml:"burst"`
	TrustProxy bool    `yaml:"trust_proxy"`
	// SMS is the HTTP gateway for SMS invitations; its secret comes from
	// SEMKO_SMS_SECRET.
	SMS        SurveySMSConfig `yaml:"sms"`
	CheckEvery time.Duration   `yaml:"check_every"`
}

// SurveyOrgConfig is one organisation's own survey rule.
type SurveyOrgConfig struct {
	Period time.Duration `yaml:"period"`
}

// SurveySMSConfig names the SMS gateway; empty URL: no SMS.
type SurveySMSConfig struct {
	URL     string        `yaml:"url"`
	Timeout time.Duration `yaml:"timeout"`
}

// surveyParts are the survey's engine, store and public server (nil when
// the survey is off).
type surveyParts struct {
	engine *engine.Engine
	store  survey.Store
	server *api.Server
	routes []surveyapi.Route
}

// newSurvey builds the survey. Call it after ingest and alerts.
func (a *App) newSurvey() error {
	c := a.cfg.Survey
	if c.Addr == "" {
		return nil
	}
	secret, err := surveySecret(cmp.Or(c.SecretFile, filepath.Join(a.cfg.DataDir, "survey.key")))
	if err != nil {
		return err
	}
	signer, err := survey.NewSigner(secret)
	if err != nil {
		return err
	}
	store, err := a.openSurveyStore(context.Background(), cmp.Or(c.Store, filepath.Join(a.cfg.DataDir, "survey.db")))
	if err != nil {
		return err
	}
	a.sup.add("survey-store", resource{close: store.Close})
	zones := map[string]string{}
	for _, s := range a.registry.Current().Sites() {
		zones[s.ID] = s.Timezone
	}
	cals, err := calendar.NewSites(a.cfg.Alerts.Calendars.Default, a.cfg.Alerts.Calendars.Sites, zones)
	if err != nil {
		return fmt.Errorf("survey calendars: %w", err)
	}
	opts := engine.Options{
		Store: store, Signer: signer, Registry: a.registry.Current, Votes: a.ingest, Spool: a.spool,
		Calendar: cals.Of, BaseURL: c.BaseURL, Period: c.Period,
		PeriodByOrg: map[string]time.Duration{}, LinkTTL: c.LinkTTL, ScanTTL: c.ScanTTL, Serving: a.serving.At, Deadline: c.Deadline,
		FollowPassives: c.FollowPassives, Retention: c.Retention, Reasons: c.Reasons, CheckEvery: c.CheckEvery,
		Leader: a.sharedStoreLeader(), Logger: a.log.With("part", "survey"), Registerer: a.metrics,
	}
	if c.BaseURL == "" {
		// The listener's own address, known once it runs (port 0 in tests).
		opts.BaseURLFunc = func() string { return "http://" + a.survey.server.Addr() }
	}
	for org, oc := range c.Orgs {
		opts.PeriodByOrg[org] = oc.Period
	}
	if a.alerts.manager != nil {
		opts.Alerts = a.alerts.manager
	}
	if m := a.cfg.Notify.SMTP; m.Host != "" {
		pass := cmp.Or(m.Password, os.Getenv("SEMKO_SMTP_PASSWORD"))
		s, err := email.NewSender(email.Config{
			Host: m.Host, Port: m.Port, Username: m.Username, Password: pass, Auth: m.Auth,
			From: cmp.Or(m.From, "Semko <semko@localhost>"), TLS: email.TLSMode(m.TLS), Timeout: cmp.Or(m.Timeout, 20*time.Second),
		}, a.log.With("part", "survey-email"))
		if err != nil {
			return fmt.Errorf("survey smtp: %w", err)
		}
		opts.Mailer = s
	}
	if c.SMS.URL != "" {
		w, err := sms.New(c.SMS.URL, []byte(os.Getenv("SEMKO_SMS_SECRET")), c.SMS.Timeout)
		if err != nil {
			return err
		}
		opts.SMS = w
	}
	e, err := engine.New(opts)
	if err != nil {
		return err
	}
	pages, err := web.New(web.Options{Engine: e, Rate: c.Rate, Burst: c.Burst, TrustProxy: c.TrustProxy,
		Logger: a.log.With("part", "survey-web"), Registerer: a.metrics})
	if err != nil {
		return err
	}
	srv, err := api.NewServer(pages, api.ServerOptions{Addr: c.Addr, CertFile: c.CertFile, KeyFile: c.KeyFile,
		MaxConnsPerAddr: DefaultHTTPConnsPerAddr, Logger: a.log.With("part", "survey-http")})
	if err != nil {
		return err
	}
	a.survey = surveyParts{engine: e, store: store, server: srv, routes: surveyapi.Routes(e, a.registry.Current, a.log.With("part", "survey-api"))}
	return nil
}

// addSurvey adds the survey's parts to the supervisor: the engine's
// periodic work, then the public listener.
func (a *App) addSurvey() {
	if a.survey.engine == nil {
		return
	}
	a.sup.add("survey", a.survey.engine)
	a.sup.add("survey-http", a.survey.server)
}

// surveyRoutes are the survey's API routes, each with its access rule.
func (a *App) surveyRoutes() []api.Route {
	var out []api.Route
	for _, r := range a.survey.routes {
		out = append(out, api.Route{Pattern: r.Pattern, Handler: r.Handler, Rule: r.Rule})
	}
	return out
}

// addSurveyPages adds the console's Follow-ups pages (after newConsole).
func (a *App) addSurveyPages() error {
	if a.survey.engine == nil || a.console.console == nil {
		return nil
	}
	return followpage.Register(a.console.console, a.survey.engine, a.registry.Current, a.log.With("part", "survey-console"))
}

// Survey is the survey engine (nil when the survey is off).
func (a *App) Survey() *engine.Engine { return a.survey.engine }

// SurveyAddr is the survey pages' listening address, once started.
func (a *App) SurveyAddr() string {
	if a.survey.server == nil {
		return ""
	}
	return a.survey.server.Addr()
}

// surveySecret reads the key file, creating it with 32 random bytes.
func surveySecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < 32 {
			return nil, fmt.Errorf("survey secret %s: shorter than 32 bytes", path)
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("survey secret: %w", err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("survey secret: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("survey secret: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("survey secret: %w", err)
	}
	return b, nil
}
