package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/firmware-sim/fleet"
)

// surveyAddr is where `make run` serves the survey pages.
const surveyAddr = "127.0.0.1:8090"

// withSurvey turns the NPS survey on.
func withSurvey(cfg *backend.Config) {
	cfg.Survey.Addr = surveyAddr
	cfg.Survey.BaseURL = "http://" + surveyAddr
	cfg.Survey.CheckEvery = 20 * time.Second
}

// surveySim plays the queue system and its customers: every few seconds
// a contact with an e-mail address is reported through the API; the
// invitation lands in the mail sink; about half of the customers open it
// and click a score, and most of those answer the reason page, so the NPS
// panels fill and detractors' follow-ups appear within minutes.
type surveySim struct {
	api, token, mailDir string
	model               *fleet.Model
	log                 *slog.Logger
	rng                 *rand.Rand
	seen                map[string]bool
	customers           int
	client              *http.Client
}

// startSurveySim runs the simulation until ctx ends; wait returns once it
// has.
func startSurveySim(ctx context.Context, log *slog.Logger, api, token, mailDir string, model *fleet.Model, every time.Duration) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runSurveySim(ctx, log, api, token, mailDir, model, every)
	}()
	return func() { <-done }
}

func runSurveySim(ctx context.Context, log *slog.Logger, api, token, mailDir string, model *fleet.Model, every time.Duration) {
	s := &surveySim{api: api, token: token, mailDir: mailDir, model: model, log: log, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11)),
		seen: map[string]bool{}, client: &http.Client{Timeout: 10 * time.Second}}
	fmt.Printf("  Survey     http://%s (NPS pages; invitations in the mail sink, simulated customers answer about half)\n\n", surveyAddr)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.contact(ctx); err != nil {
			s.log.Warn("survey sim: contact", "err", err)
		}
		s.answerNewMail(ctx)
	}
}

func (s *surveySim) contact(ctx context.Context) error {
	var counters []fleet.Counter
	for _, o := range s.model.Orgs {
		for _, site := range o.Sites {
			counters = append(counters, site.Counters...)
		}
	}
	if len(counters) == 0 {
		return nil
	}
	c := counters[s.rng.IntN(len(counters))]
	s.customers++
	n := s.customers
	if s.rng.IntN(10) == 0 && n > 3 {
		n = s.rng.IntN(n-1) + 1 // a returning customer: the six-month rule says no
	}
	langs := []string{"bg", "bg", "bg", "ru", "en"}
	body, _ := json.Marshal(map[string]string{"counter": c.ID, "email": fmt.Sprintf("customer-%d@example.org", n), "lang": langs[s.rng.IntN(len(langs))]})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.api+"/api/v1/survey/contacts", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("contact: %s", resp.Status)
	}
	return nil
}

var simLinkRE = regexp.MustCompile(`http://[^\s]+/s/[A-Za-z0-9_-]+`)

// answerNewMail reads the invitations that arrived since the last round
// and answers some.
func (s *surveySim) answerNewMail(ctx context.Context) {
	files, _ := filepath.Glob(filepath.Join(s.mailDir, "*.eml"))
	for _, f := range files {
		if s.seen[f] {
			continue
		}
		s.seen[f] = true
		text := mailText(f)
		links := simLinkRE.FindAllString(text, -1)
		if len(links) != 11 || s.rng.Float64() > 0.55 {
			continue // not an invitation, or this customer does not answer
		}
		// Mostly content, a fifth detractors.
		weights := []int{1, 1, 1, 2, 2, 3, 4, 8, 12, 14, 12}
		score, total := 0, 0
		for _, w := range weights {
			total += w
		}
		for r := s.rng.IntN(total); r >= weights[score]; score++ {
			r -= weights[score]
		}
		if err := s.answer(ctx, links[score], score); err != nil {
			s.log.Warn("survey sim: answer", "err", err)
		}
	}
}

func (s *surveySim) answer(ctx context.Context, link string, score int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if s.rng.IntN(5) == 0 {
		return nil // clicked a score, skipped the reasons
	}
	reasons := []string{"information", "materials", "speed", "process", "other"}
	form := url.Values{}
	for _, r := range reasons {
		if s.rng.IntN(3) == 0 {
			form.Add("reason", r)
		}
	}
	comments := map[bool][]string{
		true:  {"Чаках твърде дълго.", "Никой не ми обясни какво да попълня.", "The form was confusing.", "Слишком долго ждал."},
		false: {"Благодаря, бързо и любезно.", "Very helpful staff.", "Всё понятно и быстро."},
	}
	if s.rng.IntN(2) == 0 {
		list := comments[score <= 6]
		form.Set("comment", list[s.rng.IntN(len(list))])
	}
	if score <= 6 && s.rng.IntN(2) == 0 {
		form.Set("consent", "yes")
	}
	action := strings.Replace(link, "/s/", "/a/", 1)
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, action, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = s.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil
}

// mailText is the decoded text part of a stored message ("" if none).
func mailText(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	if !strings.HasPrefix(mt, "multipart/") {
		b, _ := io.ReadAll(quotedprintable.NewReader(m.Body))
		return string(b)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			return ""
		}
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
			b, _ := io.ReadAll(quotedprintable.NewReader(p))
			return string(b)
		}
	}
}
