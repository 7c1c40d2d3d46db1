// Package fleet builds simulated fleets: a deterministic model of
// organisations, sites, counters, keypads, operators and services generated
// from a seed (Generate), the registry's fleet file for it
// (Model.WriteFleetFile), and a run that drives every unit, a simulated
// keypad plus a real edge agent, with customers who get served and vote
// (Run), counting what they did in a Tally that tests compare with what
// reached the backend.
package fleet

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Spec says what fleet to generate. Zero counts mean 1 (OperatorsPerSite:
// one per counter; Services: 4).
type Spec struct {
	Seed             int64
	Orgs             int
	SitesPerOrg      int
	CountersPerSite  int
	OperatorsPerSite int
	Services         int
	FW               string // firmware of every keypad; default "1.4.2"
	// PoorOperators is the share of operators with a poor rating mix;
	// 0 means 0.1.
	PoorOperators float64
}

// Model is a generated fleet. Everything in it follows from Spec.
type Model struct {
	Spec      Spec
	Orgs      []Org
	Devices   []Device
	Operators []Operator
	Services  []Service
}

// Org is an organisation: a municipality, a utility, a bank.
type Org struct {
	ID, Name, Timezone string
	Sites              []Site
	town               string
}

// Site is one office of an organisation.
type Site struct {
	ID, Name, Timezone string
	Org                string
	Responsible        Person
	Counters           []Counter
	Operators          []string // ids of the operators who work here
}

// Person is someone notified about a site's negative ratings.
type Person struct{ Name, Email, Lang string }

// Counter is one service counter with its keypad.
type Counter struct {
	ID, Name string
	Site     string
	Device   string // the keypad's device id
	Operator string // who usually serves here
	Service  string // what is usually served here
}

// Device is one keypad with its edge agent.
type Device struct {
	ID        string
	Secret    string // the MQTT password; see DeviceSecret
	Model     string
	Serial    string
	FW        string
	Installed time.Time // UTC midnight
	Org       string
	Site      string
	Counter   string
}

// Operator is a person serving at counters, with the mix of ratings their
// customers give.
type Operator struct {
	ID, Name string
	Org      string
	Site     string
	Mix      [5]float64 // probability of keys 1..5, summing to 1
	Poor     bool
}

// Service is a kind of service with its typical duration.
type Service struct {
	ID, Name string
	Typical  time.Duration
}

// Rating mixes: most operators please most customers; a few do not.
var (
	goodMix = [5]float64{0.03, 0.04, 0.10, 0.28, 0.55}
	poorMix = [5]float64{0.22, 0.20, 0.25, 0.18, 0.15}
)

// Generate builds the fleet described by spec. The same spec always gives
// the same model.
func Generate(spec Spec) *Model {
	spec = spec.withDefaults()
	rng := rand.New(rand.NewPCG(uint64(spec.Seed), 0x5e4b0f1ee7))
	m := &Model{Spec: spec}

	for i := range spec.Services {
		s := serviceCatalog[i%len(serviceCatalog)]
		if i >= len(serviceCatalog) {
			s.ID = fmt.Sprintf("%s-%d", s.ID, i/len(serviceCatalog)+1)
			s.Name = fmt.Sprintf("%s %d", s.Name, i/len(serviceCatalog)+1)
		}
		m.Services = append(m.Services, s)
	}

	siteN := 0
	for o := range spec.Orgs {
		kind := orgKinds[o%len(orgKinds)]
		town := towns[rng.IntN(len(towns))]
		org := Org{
			town:     town,
			ID:       "org-" + strconv.Itoa(o+1),
			Name:     kind.name(town),
			Timezone: "Europe/Sofia",
		}
		for range spec.SitesPerOrg {
			siteN++
			town := towns[rng.IntN(len(towns))]
			if strings.Contains(kind.pattern, "%s") {
				town = org.town // a town's municipality serves in that town
			}
			place := kind.places[rng.IntN(len(kind.places))]
			site := Site{
				ID:          slug(town) + "-" + strconv.Itoa(siteN),
				Name:        place + ", " + town,
				Timezone:    "Europe/Sofia",
				Org:         org.ID,
				Responsible: randomPerson(rng),
			}
			for range spec.OperatorsPerSite {
				p := randomPerson(rng)
				op := Operator{
					ID:   fmt.Sprintf("op-%04d", len(m.Operators)+1),
					Name: p.Name, Org: org.ID, Site: site.ID, Mix: goodMix,
				}
				if rng.Float64() < spec.PoorOperators {
					op.Mix, op.Poor = poorMix, true
				}
				m.Operators = append(m.Operators, op)
				site.Operators = append(site.Operators, op.ID)
			}
			for c := range spec.CountersPerSite {
				dev := Device{
					ID:    fmt.Sprintf("kp-%04d", len(m.Devices)+1),
					Model: "SK5",
					FW:    spec.FW,
					// Installed over the last three and a half years, so
					// some warranties have ended and a few units are due
					// for replacement.
					Installed: installEpoch.AddDate(0, 0, -rng.IntN(3*365+180)),
					Org:       org.ID,
					Site:      site.ID,
				}
				dev.Serial = fmt.Sprintf("SK5-%06d", len(m.Devices)+1)
				dev.Secret = DeviceSecret(spec.Seed, dev.ID)
				counter := Counter{
					ID:       fmt.Sprintf("%s-c%d", site.ID, c+1),
					Name:     fmt.Sprintf("Counter %d", c+1),
					Site:     site.ID,
					Device:   dev.ID,
					Operator: site.Operators[c%len(site.Operators)],
					Service:  m.Services[rng.IntN(len(m.Services))].ID,
				}
				dev.Counter = counter.ID
				m.Devices = append(m.Devices, dev)
				site.Counters = append(site.Counters, counter)
			}
			org.Sites = append(org.Sites, site)
		}
		m.Orgs = append(m.Orgs, org)
	}
	return m
}

// installEpoch anchors installation dates so that they do not depend on
// the day the fleet is generated.
var installEpoch = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func (s Spec) withDefaults() Spec {
	for _, n := range []*int{&s.Orgs, &s.SitesPerOrg, &s.CountersPerSite} {
		if *n <= 0 {
			*n = 1
		}
	}
	if s.OperatorsPerSite <= 0 {
		s.OperatorsPerSite = s.CountersPerSite
	}
	if s.Services <= 0 {
		s.Services = 4
	}
	if s.FW == "" {
		s.FW = "1.4.2"
	}
	if s.PoorOperators <= 0 {
		s.PoorOperators = 0.1
	}
	return s
}

// DeviceSecret derives a device's MQTT password from the seed and its id,
// so a fleet file written once and a fleet run later agree without sharing
// anything but the seed. It is a simulation secret: anyone who knows the
// seed knows every password.
func DeviceSecret(seed int64, device string) string {
	mac := hmac.New(sha256.New, []byte("semko-sim/"+strconv.FormatInt(seed, 10)))
	mac.Write([]byte(device))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// Site returns the site with id, or nil.
func (m *Model) Site(id string) *Site {
	for o := range m.Orgs {
		for s := range m.Orgs[o].Sites {
			if m.Orgs[o].Sites[s].ID == id {
				return &m.Orgs[o].Sites[s]
			}
		}
	}
	return nil
}

// Operator returns the operator with id, or nil.
func (m *Model) Operator(id string) *Operator {
	for i := range m.Operators {
		if m.Operators[i].ID == id {
			return &m.Operators[i]
		}
	}
	return nil
}

// Counters returns every counter of the fleet, in model order.
func (m *Model) Counters() []Counter {
	var cs []Counter
	for _, o := range m.Orgs {
		for _, s := range o.Sites {
			cs = append(cs, s.Counters...)
		}
	}
	return cs
}

// Names. Bulgarian towns and offices, transliterated so ids stay ASCII.

var towns = []string{
	"Sofia", "Plovdiv", "Varna", "Burgas", "Ruse", "Stara Zagora", "Pleven",
	"Sliven", "Dobrich", "Shumen", "Pernik", "Haskovo", "Yambol",
	"Pazardzhik", "Blagoevgrad", "Veliko Tarnovo", "Vratsa", "Gabrovo",
	"Vidin", "Montana", "Kardzhali", "Kyustendil", "Lovech", "Targovishte",
	"Silistra", "Razgrad", "Smolyan",
}

type orgKind struct {
	pattern string // %s is a town, or nothing
	places  []string
}

func (k orgKind) name(town string) string {
	if strings.Contains(k.pattern, "%s") {
		return fmt.Sprintf(k.pattern, town)
	}
	return k.pattern
}

var orgKinds = []orgKind{
	{"%s Municipality", []string{"Civil registry", "Local taxes office", "Town hall service centre", "District administration"}},
	{"%s Water Supply", []string{"Customer centre", "Billing office"}},
	{"Energo Pro Distribution", []string{"Customer centre", "Connections office"}},
	{"Balkan Savings Bank", []string{"Branch", "Business centre"}},
	{"National Revenue Agency", []string{"Territorial directorate", "Information desk"}},
}

var serviceCatalog = []Service{
	{"passport", "Passport and identity card", 6 * time.Minute},
	{"civil-status", "Civil status certificate", 4 * time.Minute},
	{"address-reg", "Address registration", 5 * time.Minute},
	{"local-tax", "Local taxes payment", 3 * time.Minute},
	{"bill-payment", "Bill payment", 2 * time.Minute},
	{"new-connection", "New connection request", 12 * time.Minute},
	{"complaint", "Complaint", 9 * time.Minute},
	{"account-open", "Opening an account", 15 * time.Minute},
	{"loan-consult", "Loan consultation", 20 * time.Minute},
	{"cash-desk", "Cash desk", 3 * time.Minute},
}

var (
	maleFirst   = []string{"Georgi", "Ivan", "Dimitar", "Nikolay", "Petar", "Hristo", "Stoyan", "Todor", "Vasil", "Kaloyan"}
	femaleFirst = []string{"Maria", "Ivana", "Elena", "Desislava", "Gergana", "Radka", "Teodora", "Yordanka", "Vesela", "Milena"}
	// Family names in their male form; the female form adds "a".
	familyNames = []string{"Ivanov", "Petrov", "Georgiev", "Dimitrov", "Nikolov", "Stoyanov", "Todorov", "Kolev", "Angelov", "Marinov", "Popov", "Hristov"}
)

func randomPerson(rng *rand.Rand) Person {
	family := familyNames[rng.IntN(len(familyNames))]
	var first string
	if rng.IntN(2) == 0 {
		first = maleFirst[rng.IntN(len(maleFirst))]
	} else {
		first = femaleFirst[rng.IntN(len(femaleFirst))]
		family += "a"
	}
	lang := "bg"
	if rng.IntN(5) == 0 {
		lang = "en"
	}
	return Person{
		Name:  first + " " + family,
		Email: strings.ToLower(first+"."+family) + "@example.org",
		Lang:  lang,
	}
}

func slug(s string) string {
	return strings.ReplaceAll(strings.ToLower(s), " ", "-")
}
