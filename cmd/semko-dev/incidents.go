package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/backend/incident"
	"github.com/semko/semko/firmware-sim/fleet"
)

// withIncidents sets up the incident desk for `make run`: short maximum
// times so deadlines pass within minutes (on the sites' business hours),
// links to the dev API, and an e-mail intake on 127.0.0.1:2526 for the
// first organisation (cs+<site>@semko.local).
func withIncidents(cfg *backend.Config, model *fleet.Model) {
	deps := make([]incident.Department, len(incident.DefaultDepartments))
	copy(deps, incident.DefaultDepartments)
	for i := range deps {
		deps[i].MaxTime = 5 * time.Minute
	}
	cfg.Incidents.Departments = deps
	cfg.Incidents.BaseURL = "http://" + cfg.HTTP.Addr + "/api/v1"
	if len(model.Orgs) > 0 {
		cfg.Incidents.Email = incident.EmailConfig{Addr: "127.0.0.1:2526", Domain: "semko.local",
			Addresses: []incident.EmailAddress{{Address: "cs@semko.local", Org: model.Orgs[0].ID, Department: "retail"}}}
	}
}

// runIncidents simulates Customer Service's day through the API until ctx
// ends: every few seconds a complaint or a thanks is registered at a
// random site (now and then without its remark number, which the desk
// refuses and counts), passed on, worked on and closed, some late, so the
// Customer Service dashboard has figures. The returned func waits for it
// to stop.
func runIncidents(ctx context.Context, cfg backend.Config, model *fleet.Model, seed uint64, log *slog.Logger) (wait func()) {
	return runIncidentsEvery(ctx, cfg, model, seed, 4*time.Second, log)
}

// runIncidentsEvery is runIncidents with a step of every: an incident is
// closed 5 to 20 steps after it is passed on, a slow one after 90.
func runIncidentsEvery(ctx context.Context, cfg backend.Config, model *fleet.Model, seed uint64, every time.Duration, log *slog.Logger) (wait func()) {
	sim := &incidentSim{base: "http://" + cfg.HTTP.Addr, token: cfg.HTTP.Token, model: model, log: log,
		rnd: rand.New(rand.NewPCG(seed, 12)), every: every}
	var wg sync.WaitGroup
	wg.Go(func() { sim.run(ctx) })
	return wg.Wait
}

type incidentSim struct {
	base, token string
	model       *fleet.Model
	log         *slog.Logger
	rnd         *rand.Rand
	every       time.Duration
	open        []simIncident
}

type simIncident struct {
	id      int64
	passed  bool
	updated bool
	closeBy time.Time
	late    bool
}

var (
	simTypes    = []incident.Type{incident.TypePromotion, incident.TypeConsultation, incident.TypeService, incident.TypeService, incident.TypeCertificate}
	simChannels = []incident.Channel{incident.ChannelInPerson, incident.ChannelPhone, incident.ChannelEmail, incident.ChannelWebForm, incident.ChannelKeypadNegative, incident.ChannelNPSDetractor}
	simDeps     = []string{"retail", "retail", "retail", "call_centre_email", "services", "other"}
	simNames    = []string{"Мария Петрова", "Иван Иванов", "Елена Николова", "Олег Смирнов", "Anna Schmidt", "Георги Димитров"}
	simOutcomes = []string{"The customer came, the goods were exchanged", "Refund made, the customer thanked us", "Consultant briefed; apology given by phone", "Certificate sent by e-mail"}
	simReasons  = []string{"waiting_for_customer", "waiting_for_supplier", "expertise", "staff_absent"}
)

func (s *incidentSim) run(ctx context.Context) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.step(ctx)
		}
	}
}

func (s *incidentSim) step(ctx context.Context) {
	now := time.Now()
	if len(s.open) < 40 {
		s.register(ctx)
	}
	keep := s.open[:0]
	for _, in := range s.open {
		done := false
		switch {
		case !in.passed && s.rnd.IntN(3) == 0:
			if s.post(ctx, in.id, "pass", map[string]any{"to": "maria", "comment": "Please contact the customer today"}) {
				in.passed = true
				// One in five is worked on slowly and closed after its deadline.
				in.late = s.rnd.IntN(5) == 0
				in.closeBy = now.Add(time.Duration(5+s.rnd.IntN(15)) * s.every)
				if in.late {
					in.closeBy = now.Add(90 * s.every)
				}
			}
		case in.passed && !in.updated && s.rnd.IntN(2) == 0:
			in.updated = s.post(ctx, in.id, "update", map[string]any{"comment": "Called the customer; visit agreed"})
		case in.passed && now.After(in.closeBy):
			body := map[string]any{"outcome": simOutcomes[s.rnd.IntN(len(simOutcomes))], "called_back": s.rnd.IntN(4) != 0}
			if in.late {
				body["delay_reason"] = simReasons[s.rnd.IntN(len(simReasons))]
			}
			done = s.post(ctx, in.id, "close", body)
			if !done {
				in.late = true // the deadline passed meanwhile: the next try gives a reason
			}
		}
		if !done {
			keep = append(keep, in)
		}
	}
	s.open = keep
}

func (s *incidentSim) register(ctx context.Context) {
	if len(s.model.Orgs) == 0 {
		return
	}
	org := s.model.Orgs[s.rnd.IntN(len(s.model.Orgs))]
	if len(org.Sites) == 0 {
		return
	}
	site := org.Sites[s.rnd.IntN(len(org.Sites))]
	typ := simTypes[s.rnd.IntN(len(simTypes))]
	if s.rnd.IntN(5) == 0 {
		typ = incident.TypeThanks
	}
	d := map[string]any{"org": org.ID, "site": site.ID, "department": simDeps[s.rnd.IntN(len(simDeps))],
		"channel": simChannels[s.rnd.IntN(len(simChannels))], "type": typ,
		"customer_name": simNames[s.rnd.IntN(len(simNames))], "remark_no": strconv.Itoa(1000 + s.rnd.IntN(9000)),
		"description": "Simulated: the customer was unhappy with the wait and the answer at the desk."}
	if typ == incident.TypeThanks {
		d["description"] = "Simulated: the customer thanks the staff for their help."
	}
	if s.rnd.IntN(8) == 0 {
		d["remark_no"], d["channel"] = "", incident.ChannelInPerson // an interaction error: refused and counted
	}
	var got struct{ Incident incident.Incident }
	if code := s.call(ctx, http.MethodPost, "/api/v1/incidents", d, &got); code == http.StatusCreated {
		s.open = append(s.open, simIncident{id: got.Incident.ID})
	}
}

func (s *incidentSim) post(ctx context.Context, id int64, action string, body any) bool {
	return s.call(ctx, http.MethodPost, fmt.Sprintf("/api/v1/incidents/%d/%s", id, action), body, nil) == http.StatusOK
}

func (s *incidentSim) call(ctx context.Context, method, path string, body, out any) int {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, bytes.NewReader(b))
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Debug("incident simulation", "path", path, "err", err)
		}
		return 0
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}
