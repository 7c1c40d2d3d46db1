package backend

import (
	"fmt"
	"os"
	"time"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/notify/email"
	mqttnotify "github.com/semko/semko/backend/alert/notify/mqtt"
	"github.com/semko/semko/backend/alert/notify/templates"
	"github.com/semko/semko/backend/alert/notify/webhook"
)

// NotifyConfig is the `notify:` section: how alert notices travel. Who
// gets which notice is the `alerts:` section's business (receivers and
// routes); each receiver names its own addresses, webhook URL and MQTT
// wish, and these settings say how to reach them.
type NotifyConfig struct {
	SMTP    SMTPConfig       `yaml:"smtp"`
	Webhook WebhookConfig    `yaml:"webhook"`
	MQTT    NotifyMQTTConfig `yaml:"mqtt"`
}

// SMTPConfig is the mail server notices are sent through. An empty Host
// turns e-mail off.
type SMTPConfig struct {
	Host     string `yaml:"host"`
	Port     int    `yaml:"port"` // default 587 (465 with tls: tls)
	Username string `yaml:"username"`
	// Password is never read from the file: set SEMKO_SMTP_PASSWORD.
	Password string `yaml:"-"`
	// Auth is plain or login; empty picks what the server offers.
	Auth string `yaml:"auth"`
	// From is the sender; default "Semko <semko@localhost>".
	From string `yaml:"from"`
	// TLS is starttls (default), tls (implicit, port 465) or none (only
	// for a local sink such as the one `make run` starts).
	TLS     string        `yaml:"tls"`
	Timeout time.Duration `yaml:"timeout"` // one delivery; default 20 s
}

// WebhookConfig sets how notices are posted to receivers' webhook URLs.
type WebhookConfig struct {
	// Secret signs every request (X-Semko-Signature); never read from the
	// file: set SEMKO_WEBHOOK_SECRET.
	Secret string `yaml:"-"`
	// Format is json, slack or teams; empty picks by the URL's host.
	Format string `yaml:"format"`
	// Attempts per delivery before the alert manager's own retry takes
	// over; default 3.
	Attempts int           `yaml:"attempts"`
	Timeout  time.Duration `yaml:"timeout"` // one attempt; default 8 s
}

// NotifyMQTTConfig switches the MQTT channel (semko/v1/alerts/...).
type NotifyMQTTConfig struct {
	Disabled bool `yaml:"disabled"`
}

// newNotify adds the e-mail, webhook and MQTT channels to the alert
// manager. Each is its own Notifier, so the manager retries a failed
// channel without repeating the ones that succeeded. Call it after the
// alert manager and the broker (or external MQTT client) exist.
func (a *App) newNotify() error {
	if a.alerts.manager == nil {
		return nil
	}
	c := a.cfg.Notify
	render, err := templates.New(a.siteZone)
	if err != nil {
		return fmt.Errorf("notify templates: %w", err)
	}
	render.WithConsole(a.cfg.Console.PublicURL) // links to <public_url>/alerts/<id>
	var on []string
	if c.SMTP.Host != "" {
		pass := c.SMTP.Password
		if pass == "" {
			pass = os.Getenv("SEMKO_SMTP_PASSWORD")
		}
		from := c.SMTP.From
		if from == "" {
			from = "Semko <semko@localhost>"
		}
		timeout := c.SMTP.Timeout
		if timeout <= 0 {
			timeout = 20 * time.Second // within the manager's 30 s per call
		}
		s, err := email.NewSender(email.Config{
			Host: c.SMTP.Host, Port: c.SMTP.Port, Username: c.SMTP.Username, Password: pass, Auth: c.SMTP.Auth,
			From: from, TLS: email.TLSMode(c.SMTP.TLS), Timeout: timeout,
		}, a.log.With("part", "notify-email"))
		if err != nil {
			return fmt.Errorf("notify smtp: %w", err)
		}
		a.alerts.manager.AddNotifier(email.NewNotifier(s, render))
		on = append(on, "email")
	}

	secret := c.Webhook.Secret
	if secret == "" {
		secret = os.Getenv("SEMKO_WEBHOOK_SECRET")
	}
	attempts, timeout := c.Webhook.Attempts, c.Webhook.Timeout
	if attempts <= 0 {
		attempts = 3
	}
	if timeout <= 0 {
		timeout = 8 * time.Second
	}
	wh, err := webhook.New(webhook.Config{
		Secret: []byte(secret), Format: webhook.Format(c.Webhook.Format), Attempts: attempts, Timeout: timeout,
		MinBackoff: 500 * time.Millisecond, MaxBackoff: 4 * time.Second,
	}, render, a.log.With("part", "notify-webhook"))
	if err != nil {
		return fmt.Errorf("notify webhook: %w", err)
	}
	a.alerts.manager.AddNotifier(wh)
	on = append(on, "webhook")
	for _, r := range a.cfg.Alerts.Receivers {
		if r.Webhook != "" && secret == "" {
			a.log.Warn("notify: webhooks are unsigned; set SEMKO_WEBHOOK_SECRET", "receiver", r.Name)
			break
		}
	}

	if !c.MQTT.Disabled {
		a.alerts.manager.AddNotifier(mqttnotify.New(a.source, render))
		on = append(on, "mqtt")
	}
	a.log.Info("notify channels", "on", on)
	return nil
}

// notifierCheck keeps the channels honest about the interface.
var (
	_ alert.Notifier = (*email.Notifier)(nil)
	_ alert.Notifier = (*webhook.Notifier)(nil)
	_ alert.Notifier = (*mqttnotify.Notifier)(nil)
)

// siteZone is the time zone notices show times in: the site's, else the
// organisation's; nil (UTC) when the fleet does not know either.
func (a *App) siteZone(s alert.Subject) *time.Location {
	reg := a.registry.Current()
	if site, ok := reg.Site(s.Site); ok && site.Location != nil {
		return site.Location
	}
	if org, ok := reg.Organisation(s.Org); ok && org.Location != nil {
		return org.Location
	}
	return nil
}
