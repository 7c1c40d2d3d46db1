package backend_test

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/notify/webhook"
	"github.com/semko/semko/edge"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/firmware-sim/keypad"
	"github.com/semko/semko/internal/mailsink"
	"github.com/semko/semko/internal/testwait"
)

// TestNegativeVoteReachesMailAndWebhook runs what `make run` shows a
// newcomer: a customer presses 1 on a real (simulated) keypad behind a
// real edge agent; the backend's rating watcher raises the alert, and the
// notice arrives as an e-mail in the development mail sink (for the
// counter's responsible person, in their language) and as a signed JSON
// POST at an operations webhook (in Russian).
func TestNegativeVoteReachesMailAndWebhook(t *testing.T) {
	dir := t.TempDir()
	sink, err := mailsink.Start(mailsink.Options{Addr: "127.0.0.1:0", Dir: filepath.Join(dir, "mail")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	sinkHost, sinkPortS, _ := net.SplitHostPort(sink.Addr())
	sinkPort, _ := strconv.Atoi(sinkPortS)

	secret := []byte("webhook secret")
	var (
		mu    sync.Mutex
		posts []webhook.Payload
		bad   []error
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := webhook.Verify(secret, r.Header.Get(webhook.HeaderSignature), r.Header.Get(webhook.HeaderTimestamp), body, time.Now(), time.Minute); err != nil {
			bad = append(bad, err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p webhook.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			bad = append(bad, err)
		}
		posts = append(posts, p)
	}))
	t.Cleanup(hook.Close)

	model := fleet.Generate(fleet.Spec{Seed: 5, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 1, OperatorsPerSite: 2})
	dev := model.Devices[0]
	site := model.Orgs[0].Sites[0]
	// A registered operator other than the counter's default: ingest keeps
	// only registered operators of the device's organisation.
	var opID, opName string
	for _, o := range model.Operators {
		if o.ID != site.Counters[0].Operator {
			opID, opName = o.ID, o.Name
		}
	}
	// No InfluxDB: points wait in the spool, which is not what this test
	// is about.
	cfg := newTestConfig(t, model, nil)
	cfg.Alerts.Tick = 50 * time.Millisecond
	cfg.Alerts.Receivers = []alert.Receiver{{Name: "ops", Webhook: hook.URL + "/semko", Lang: "ru"}}
	cfg.Alerts.Route = alert.RouteConfig{Routes: []alert.RouteConfig{{
		Match: alert.Matchers{"kind": "negative_vote"}, Receivers: []string{alert.ReceiverResponsible, "ops"},
		GroupWait: 100 * time.Millisecond, GroupInterval: time.Hour,
	}}}
	cfg.Notify.SMTP = backend.SMTPConfig{Host: sinkHost, Port: sinkPort, TLS: "none", From: "Semko <semko@localhost>"}
	cfg.Notify.Webhook.Secret = string(secret)
	app := newApp(t, cfg, testLogger(t))
	stop := startApp(t, app)
	// Run's error is not checked: the unreachable InfluxDB may make it
	// report the backlog.
	t.Cleanup(func() { _ = stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	kp, agent := startEdge(t, ctx, edge.Config{
		Device: dev.ID, Secret: dev.Secret, Broker: "tcp://" + app.MQTTAddr(), DataDir: t.TempDir(),
		ReconnectMin: 50 * time.Millisecond, Logger: testLogger(t),
	}, keypad.Options{Serial: dev.Serial})
	testwait.For(t, "edge connected", func() bool { return agent.Stats().Connected })

	body := `{"v":1,"id":"done-B7","ticket":"B7","service":"permits","operator":"` + opID + `","service_s":250,"window_s":30}`
	apiDo(t, http.MethodPost, "http://"+app.HTTPAddr()+"/api/v1/devices/"+dev.ID+"/activate", body, http.StatusAccepted, nil)
	testwait.For(t, "keypad armed", func() bool { return kp.State().Armed })
	if err := kp.Press(ctx, 1); err != nil {
		t.Fatal(err)
	}

	// The e-mail, as a newcomer finds it under var/mail.
	testwait.For(t, "an e-mail in the sink", func() bool { return sink.Stored() > 0 })
	files, _ := filepath.Glob(filepath.Join(dir, "mail", "*.eml"))
	if len(files) != 1 {
		t.Fatalf("%d mails, want 1", len(files))
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if to := m.Header.Get("X-Original-To"); to != site.Responsible.Email {
		t.Errorf("mail to %q, want the responsible %q", to, site.Responsible.Email)
	}
	lang := cmp.Or(site.Responsible.Lang, "en")
	wantSubject := map[string]string{"en": "Negative rating (1 of 5)", "bg": "Негативна оценка (1 от 5)", "ru": "Негативная оценка (1 из 5)"}[lang]
	if !strings.Contains(subject, wantSubject) {
		t.Errorf("subject %q (lang %s), want %q", subject, lang, wantSubject)
	}
	if opID == "" || !strings.Contains(string(raw), opName) { // a registered operator is named by name
		t.Errorf("mail does not name the operator:\n%s", raw)
	}

	// The webhook, signed, in the receiver's language.
	testwait.For(t, "a webhook post", func() bool { mu.Lock(); defer mu.Unlock(); return len(posts)+len(bad) > 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("webhook receiver rejected: %v", bad)
	}
	p := posts[0]
	if p.Kind != alert.KindNegativeVote || p.Lang != "ru" || p.Receiver != "ops" || len(p.Alerts) != 1 ||
		!strings.Contains(p.Subject, "Негативная оценка") {
		t.Errorf("webhook payload %+v", p)
	}
	if d := p.Alerts[0].Details; d["score"] != "1" || d["operator"] != opID {
		t.Errorf("webhook alert details %v", d)
	}
}

func TestNotifyConfigFromYAML(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr bool
	}{
		{"all channels", "notify:\n  smtp: {host: mail.example.org, port: 587, username: semko, from: 'Semko <alerts@example.org>', tls: starttls, auth: login}\n  webhook: {format: teams, attempts: 2}\n  mqtt: {disabled: true}\n", false},
		{"a password in the file is refused", "notify:\n  smtp: {host: mail.example.org, password: secret}\n", true},
		{"a webhook secret in the file is refused", "notify:\n  webhook: {secret: x}\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "semko.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := backend.LoadConfig(path)
			if (err != nil) != tt.wantErr {
				t.Fatalf("LoadConfig: %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (cfg.Notify.SMTP.Auth != "login" || cfg.Notify.Webhook.Format != "teams" || !cfg.Notify.MQTT.Disabled) {
				t.Fatalf("notify = %+v", cfg.Notify)
			}
		})
	}
}
