package bench

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/semko/semko/backend/intake/influx"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/internal/influxdb"
	"github.com/semko/semko/protocol"
)

// National fleet of issue 7, and its shape per site.
const (
	natDevices   = 20000
	natSites     = 500
	natOperators = 5000
	natServices  = 30
	// votesPerDeviceYear: about 40 services a counter a day, 70% voting,
	// 250 working days.
	votesPerDeviceYear = 7000
	// invalidShare of presses are stored with valid=false; half of them
	// (repeats) carry the activation's operator and service, half (no
	// activation) the counter's defaults.
	invalidShare = 0.10
)

// voteSeries is the expected number of vote series of one device that
// casts votes over a year, its site having ops operators and the fleet
// svcs services. The tags org, site and counter follow from device and add
// nothing; channel and scale are constant for keypads. What multiplies is
// operator x service x valid: each combination seen is a series.
func voteSeries(ops, svcs int, votes float64) float64 {
	combos := float64(ops * svcs)
	seen := func(draws float64) float64 { return combos * (1 - math.Exp(-draws/combos)) }
	valid := seen(votes * (1 - invalidShare))
	repeats := seen(votes * invalidShare / 2)
	// No-activation presses share one series (the counter's defaults).
	noAct := 1 - math.Exp(-votes*invalidShare/2)
	return valid + repeats + noAct
}

// runCardinality (target 6) computes the series count of a national fleet
// from the tag design, then writes a 1/100 sample (200 devices, 5 sites,
// 50 operators, 30 services, a year of votes each) through the real line
// encoder into InfluxDB and compares SHOW SERIES EXACT CARDINALITY with
// the same formula.
func runCardinality(ctx context.Context, e *env) (Result, error) {
	res := Result{Goal: "reported, with its cost"}
	opsPerSite := natOperators / natSites
	perDevice := voteSeries(opsPerSite, natServices, votesPerDeviceYear)
	national := perDevice * natDevices
	// activation points carry the vote's tags (valid=true): operator x
	// service per device; heartbeat one per device and firmware; presence
	// one per device.
	activation := float64(natDevices) * float64(opsPerSite*natServices) *
		(1 - math.Exp(-votesPerDeviceYear/0.7/float64(opsPerSite*natServices)))
	other := 2.0 * natDevices

	const sDevices, sSitesDevices = 200, 40
	votesPer := votesPerDeviceYear
	if e.cfg.Quick {
		votesPer = 700
	}
	if err := e.newDatabase(ctx, "t6"); err != nil {
		return res, err
	}
	rng := rand.New(rand.NewPCG(6, 6))
	year := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var batch []byte
	written := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := e.writeLines(ctx, "t6", batch)
		batch = batch[:0]
		return err
	}
	for d := range sDevices {
		site := d / sSitesDevices
		p := registry.Placement{Org: "org-1", Site: fmt.Sprintf("site-%d", site), Counter: fmt.Sprintf("c-%d", d),
			Operator: fmt.Sprintf("op-%d-0", site), Service: "svc-0"}
		for i := range votesPer {
			v := protocol.Vote{V: protocol.Version, Device: fmt.Sprintf("kp-%05d", d), Seq: uint64(i + 1),
				Time:  year.Add(time.Duration(i) * (365 * 24 * time.Hour / time.Duration(votesPer))),
				Score: rng.IntN(5) + 1, Scale: protocol.ScaleCSAT5, Channel: protocol.ChannelKeypad, Valid: true}
			r := rng.Float64()
			switch {
			case r < invalidShare/2: // no activation: no operator or service
				v.Valid, v.Reason = false, protocol.ReasonNoActivation
			default:
				v.Operator = fmt.Sprintf("op-%d-%d", site, rng.IntN(opsPerSite))
				v.Service = fmt.Sprintf("svc-%d", rng.IntN(natServices))
				if r < invalidShare {
					v.Valid, v.Reason = false, protocol.ReasonRepeat
				}
			}
			batch = influx.VoteLine(batch, v, p)
			batch = append(batch, '\n')
			written++
			if written%5000 == 0 {
				if err := flush(); err != nil {
					return res, err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return res, err
	}
	exact, err := e.seriesCardinality(ctx, "t6", "SHOW SERIES EXACT CARDINALITY FROM vote")
	if err != nil {
		return res, err
	}
	estimate, _ := e.seriesCardinality(ctx, "t6", "SHOW SERIES CARDINALITY FROM vote")
	want := voteSeries(opsPerSite, natServices, float64(votesPer)) * sDevices
	off := math.Abs(float64(exact)-want) / want
	res.Figure = fmt.Sprintf("%.1fM series (vote %.1fM, activation %.1fM)", (national+activation+other)/1e6, national/1e6, activation/1e6)
	res.Met = off < 0.05
	res.Note = fmt.Sprintf("sample of %d devices x %d votes: %d vote series measured (estimate %d), formula %.0f (%.1f%% off); cost: operator x service x valid per device, about %.0f vote series a device",
		sDevices, votesPer, exact, estimate, want, off*100, perDevice)
	return res, nil
}

// writeLines posts line protocol to InfluxDB 1.8's /write.
func (e *env) writeLines(ctx context.Context, db string, lines []byte) error {
	u := e.influx.URL() + "/write?" + url.Values{"db": {db}, "precision": {"ns"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(lines))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("write sample: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("write sample: HTTP %s", resp.Status)
	}
	return nil
}

// seriesCardinality runs a SHOW SERIES ... CARDINALITY statement and sums
// its counts (1.8 answers per shard group).
func (e *env) seriesCardinality(ctx context.Context, db, q string) (int64, error) {
	series, err := influxdb.Query(ctx, e.influx.URL(), db, q)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, s := range series {
		for row := range s.Values {
			n, err := s.Int(row, "count")
			if err != nil {
				return 0, fmt.Errorf("%s: %w", q, err)
			}
			total += n
		}
	}
	return total, nil
}
