package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/semko/semko/backend/intake/influx"
	"github.com/semko/semko/fleet/registry"
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
	// invalidShare of presses are invalid; half of them (repeats) carry
	// the activation's operator and service, half (no activation) the
	// counter's defaults.
	invalidShare = 0.10
	// turnover is the share of a site's operators replaced each year: it
	// is what makes the series count grow with time at all.
	turnover = 0.2
)

// seriesPerDevice is the expected number of vote series of one device over
// years of votes, its site having ops operators at a time (turnover of
// them replaced each year) and the fleet svcs services. The tags org, site
// and counter follow from device and add nothing; channel and scale are
// constant for keypads. What multiplies is operator x service, and in the
// old design (valid a tag) x valid: each combination seen is a series.
func seriesPerDevice(oldDesign bool, ops, svcs, years int, votes float64) float64 {
	stay := ops - int(float64(ops)*turnover)
	combos := float64(ops * svcs)
	seen := func(draws float64) float64 { return 1 - math.Exp(-draws) }
	var total float64
	// Year y's operators are k = y*(ops-stay) .. +ops-1: a sliding window,
	// ops-stay of them replaced each year.
	for k := 0; k < ops+(years-1)*(ops-stay); k++ {
		inYears := 0
		for y := range years {
			if k >= y*(ops-stay) && k < y*(ops-stay)+ops {
				inYears++
			}
		}
		valid := float64(inYears) * votes * (1 - invalidShare) / combos
		repeats := float64(inYears) * votes * invalidShare / 2 / combos
		if oldDesign {
			total += float64(svcs) * (seen(valid) + seen(repeats))
		} else {
			total += float64(svcs) * seen(valid+repeats)
		}
	}
	if oldDesign {
		// No-activation presses: one valid=false series (the counter's
		// defaults). In the new design they share the defaults' series.
		total += seen(float64(years) * votes * invalidShare / 2)
	}
	return total
}

// activationSeriesPerDevice: operator x service seen by activations (their
// valid tag is constant), in either design.
func activationSeriesPerDevice(ops, svcs, years int) float64 {
	stay := ops - int(float64(ops)*turnover)
	opsSeen := ops + (years-1)*(ops-stay)
	perCombo := votesPerDeviceYear / 0.7 / float64(ops*svcs)
	return float64(opsSeen*svcs) * (1 - math.Exp(-perCombo))
}

// nationalSeries is the whole database: vote, activation, and about one
// heartbeat and one presence series a device.
func nationalSeries(oldDesign bool, years int) (total, vote float64) {
	ops := natOperators / natSites
	vote = seriesPerDevice(oldDesign, ops, natServices, years, votesPerDeviceYear) * natDevices
	act := activationSeriesPerDevice(ops, natServices, years) * natDevices
	return vote + act + 2*natDevices, vote
}

// runCardinality (target 6) computes the series count of a national fleet
// for one and three years under the old tag design (valid a tag) and the
// new one (valid a field), then writes a sample (20 devices at 2 sites, 10
// operators a site with turnover, 30 services, three years of votes) through
// the real line encoder, and the same votes in the old shape, into two
// databases, and compares the series counts InfluxDB reports after one year
// and after three with the formula.
func runCardinality(ctx context.Context, e *env) (Result, error) {
	res := Result{Goal: "reported, with its cost; bounded by the fleet"}
	const sDevices, sSiteDevices, years = 20, 10, 3
	ops := natOperators / natSites
	stay := ops - int(float64(ops)*turnover)
	votesPer := votesPerDeviceYear
	if e.cfg.Quick {
		votesPer = 700
	}
	for _, db := range []string{"t6old", "t6new"} {
		if err := e.newDatabase(ctx, db); err != nil {
			return res, err
		}
	}
	count := func(db string) (int64, error) {
		c, err := influx.NewSeriesCheck(influx.SeriesCheckOptions{URL: e.influx.URL(), Database: db,
			Report: func(context.Context, influx.SeriesState) {}})
		if err != nil {
			return 0, err
		}
		st := c.RunOnce(ctx)
		if st.Series < 0 {
			return 0, fmt.Errorf("series count of %s not read", db)
		}
		return st.Series, nil
	}
	rng := rand.New(rand.NewPCG(6, 6))
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var oldBatch, newBatch []byte
	flush := func() error {
		if len(newBatch) == 0 {
			return nil
		}
		err := errors.Join(e.writeLines(ctx, "t6old", oldBatch), e.writeLines(ctx, "t6new", newBatch))
		oldBatch, newBatch = oldBatch[:0], newBatch[:0]
		return err
	}
	measured := map[[2]int]int64{} // {old?1:0, years} -> series
	for y := range years {
		for d := range sDevices {
			site := d / sSiteDevices
			p := registry.Placement{Org: "org-1", Site: fmt.Sprintf("site-%d", site), Counter: fmt.Sprintf("c-%d", d),
				Operator: fmt.Sprintf("op-%d-0", site), Service: "svc-0"}
			for i := range votesPer {
				seq := y*votesPer + i + 1
				v := protocol.Vote{V: protocol.Version, Device: fmt.Sprintf("kp-%05d", d), Seq: uint64(seq),
					Time:  start.Add(time.Duration(seq) * (365 * 24 * time.Hour / time.Duration(votesPer))),
					Score: rng.IntN(5) + 1, Scale: protocol.ScaleCSAT5, Channel: protocol.ChannelKeypad, Valid: true}
				r := rng.Float64()
				switch {
				case r < invalidShare/2: // no activation: the counter's defaults
					v.Valid, v.Reason = false, protocol.ReasonNoActivation
				default:
					// This year's operators: a window of ops sliding by
					// the ones replaced.
					v.Operator = fmt.Sprintf("op-%d-%d", site, y*(ops-stay)+rng.IntN(ops))
					v.Service = fmt.Sprintf("svc-%d", rng.IntN(natServices))
					if r < invalidShare {
						v.Valid, v.Reason = false, protocol.ReasonRepeat
					}
				}
				newBatch = influx.VoteLine(newBatch, v, p)
				newBatch = append(newBatch, '\n')
				oldBatch = oldVoteLine(oldBatch, v, p)
				oldBatch = append(oldBatch, '\n')
				if seq%5000 == 0 {
					if err := flush(); err != nil {
						return res, err
					}
				}
			}
		}
		if err := flush(); err != nil {
			return res, err
		}
		if y == 0 || y == years-1 {
			for i, db := range []string{"t6new", "t6old"} {
				n, err := count(db)
				if err != nil {
					return res, err
				}
				measured[[2]int{i, y + 1}] = n
			}
		}
	}
	// Compare each measured figure with the formula for the sample.
	worst := 0.0
	var notes []string
	for _, k := range [][2]int{{1, 1}, {1, 3}, {0, 1}, {0, 3}} {
		want := seriesPerDevice(k[0] == 1, ops, natServices, k[1], float64(votesPer)) * sDevices
		got := float64(measured[k])
		worst = max(worst, math.Abs(got-want)/want)
		name := "new"
		if k[0] == 1 {
			name = "old"
		}
		notes = append(notes, fmt.Sprintf("%s %dy %d (formula %.0f, %.1f/device)", name, k[1], measured[k], want, got/sDevices))
	}
	old1, _ := nationalSeries(true, 1)
	old3, _ := nationalSeries(true, 3)
	new1, newVote1 := nationalSeries(false, 1)
	new3, newVote3 := nationalSeries(false, 3)
	res.Figure = fmt.Sprintf("national fleet: %.1fM series after 1 year, %.1fM after 3 (vote %.1fM, %.1fM); old design %.1fM, %.1fM",
		new1/1e6, new3/1e6, newVote1/1e6, newVote3/1e6, old1/1e6, old3/1e6)
	res.Met = worst < 0.05
	res.Note = fmt.Sprintf("sample of %d devices x %d votes a year, %.0f%% operator turnover a year; vote series measured: %s; worst %.1f%% off the formula; "+
		"growth with time is staff turnover only (operator x service per device)",
		sDevices, votesPer, turnover*100, strings.Join(notes, "; "), worst*100)
	return res, nil
}

// oldVoteLine is a vote as backend/intake/influx wrote it before issue 16, with
// valid a tag: the old design the sample measures against.
func oldVoteLine(dst []byte, v protocol.Vote, p registry.Placement) []byte {
	line := influx.VoteLine(nil, v, p)
	sp := bytes.IndexByte(line, ' ') // first unescaped space: values here have none
	fields := bytes.Replace(line[sp:], []byte(`,valid="true"`), nil, 1)
	fields = bytes.Replace(fields, []byte(`,valid="false"`), nil, 1)
	dst = append(dst, line[:sp]...)
	dst = append(dst, ",valid="...)
	dst = strconv.AppendBool(dst, v.Valid)
	return append(dst, fields...)
}

// writeLines posts line protocol to InfluxDB 1.8's /write.
func (e *env) writeLines(ctx context.Context, db string, lines []byte) error {
	u := e.influx.URL() + "/write?" + url.Values{"db": {db}, "precision": {"ns"}}.Encode()
	// A loaded machine can make influxd time out a write (HTTP 500
	// "timeout"): the same points again are harmless, so try a few times.
	var err error
	for attempt := range 5 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
		var req *http.Request
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(lines))
		if err != nil {
			return err
		}
		var resp *http.Response
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			err = fmt.Errorf("write sample: %w", err)
			continue
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusNoContent:
			return nil
		case resp.StatusCode >= 500:
			err = fmt.Errorf("write sample: HTTP %s: %s", resp.Status, resp.Header.Get("X-Influxdb-Error"))
			continue
		}
		return fmt.Errorf("write sample: HTTP %s: %s", resp.Status, resp.Header.Get("X-Influxdb-Error"))
	}
	return err
}
