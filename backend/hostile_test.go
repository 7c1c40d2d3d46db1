package backend_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/broker"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/internal/influxlocal"
	"github.com/semko/semko/internal/testpki"
	"github.com/semko/semko/internal/testwait"
	"github.com/semko/semko/protocol"
)

// Loopback source addresses: the honest fleet connects from 127.0.0.1,
// hostile clients from the others, so the per-address limit can be shown
// to stop one host without touching the rest.
const (
	hostileAddr  = "127.0.0.2" // hostile devices with valid credentials
	stormAddr    = "127.0.0.3" // the connection storm
	hostileLimit = 24          // mqtt.max_conns_per_addr in this test
	stormConns   = 40
	// The honest fleet's edges keep at most one connection each.
	hostileConnectTimeout = 2 * time.Second
	hostileMaxInflight    = 64
	hostileAPIToken       = "hostile-test-api-token-7c1f"
	hostileActivations    = 8 // per honest counter
)

// TestHostileClients runs the real backend, a real InfluxDB and a small
// honest fleet, and while the fleet works, hostile clients try every kind
// of bad input and abuse. Each attempt must move its counter in /metrics,
// and when the fleet is done InfluxDB must hold exactly what the honest
// customers pressed, device by device and score by score.
func TestHostileClients(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts InfluxDB and a fleet")
	}
	db := influxlocal.StartForTest(t)
	full := fleet.Generate(fleet.Spec{Seed: 31, Orgs: 2, SitesPerOrg: 2, CountersPerSite: 4})
	// The last three keypads are registered (they have credentials) but
	// run no honest edge: they are the hostile devices.
	n := len(full.Devices)
	evil, flooder, slow := full.Devices[n-1], full.Devices[n-2], full.Devices[n-3]
	honest := withoutDevices(full, evil.ID, flooder.ID, slow.ID)
	victim := honest.Devices[0]

	logs := &lockedBuffer{}
	app, mqttAddr, httpAddr := startHostileBackend(t, db, full,
		slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
	m := &metricsReader{url: "http://" + httpAddr + "/metrics"}

	// The honest fleet, in the background.
	fleetCtx, cancelFleet := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancelFleet()
	tally := fleet.NewTally(honest)
	fleetDone := make(chan error, 1)
	fleetStart := time.Now()
	var fleetTook atomic.Int64
	go func() {
		err := fleet.RunWithTally(fleetCtx, honest, fleet.Options{
			Broker: "tcp://" + mqttAddr, DataDir: t.TempDir(),
			ServiceInterval: 200 * time.Millisecond, Window: 3 * time.Second,
			Participation: 0.7, StrayPresses: 0.1, MaxActivations: hostileActivations,
			// The honest fleet must drain as fast as without the attack.
			DrainTimeout: 10 * time.Second,
			Logger:       testLogger(t),
		}, tally)
		fleetTook.Store(int64(time.Since(fleetStart)))
		fleetDone <- err
	}()
	testwait.Within(t, 30*time.Second, "the fleet's first activation", func() bool { return tally.Total().Activations > 0 })

	// A flooding device, for as long as the fleet runs.
	stopFlood := make(chan struct{})
	floodDone := make(chan floodResult, 1)
	floodConn := dialTCP(t, mqttAddr, hostileAddr)
	if _, err := connectMQTT(t, floodConn, flooder.ID, flooder.ID, flooder.Secret); err != nil {
		t.Fatal(err)
	}
	go func() { floodDone <- flood(floodConn, flooder.ID, stopFlood) }()

	// A slowloris on the API, for as long as the server lets it: the
	// server's header timeout (5 s) must cut it while the rest goes on.
	slowloris := make(chan time.Duration, 1)
	loris := dialTCP(t, httpAddr, hostileAddr)
	if _, err := loris.Write([]byte("GET /healthz HTTP/1.1\r\nHost: semko\r\nX-Slow: ")); err != nil {
		t.Fatal(err)
	}
	go func(start time.Time) {
		closedBy(loris, 30*time.Second)
		slowloris <- time.Since(start)
	}(time.Now())

	t.Run("bad payloads are acknowledged, discarded and counted", func(t *testing.T) {
		c := dialMQTT(t, mqttAddr, hostileAddr, evil.ID, evil.ID, evil.Secret)
		topic := protocol.DeviceTopic(evil.ID, protocol.KindVote)
		vote := func(change func(v *protocol.Vote)) []byte {
			v := protocol.SampleVote()
			v.Device, v.Time = evil.ID, time.Now().UTC()
			change(&v)
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		cases := []struct {
			name, reason, brokerReason string
			payload                    []byte
		}{
			{"malformed JSON", "decode", "invalid", []byte(`{"v":1,"device":"` + evil.ID + `","seq":`)},
			// Valid JSON, so ingest files it under "invalid", not "decode".
			{"not an object", "invalid", "invalid", []byte(`[1,2,3]`)},
			{"wrong payload version", "version", "version", vote(func(v *protocol.Vote) { v.V = 2 })},
			{"score out of range", "invalid", "invalid", vote(func(v *protocol.Vote) { v.Score = 9 })},
			{"payload over protocol.MaxPayload", "too_large", "too_large",
				[]byte(`{"v":1,"pad":"` + strings.Repeat("x", protocol.MaxPayload) + `"}`)},
			{"payload device differs from topic device", "spoofed", "invalid", vote(func(v *protocol.Vote) { v.Device = victim.ID })},
		}
		for _, tc := range cases {
			ingest := series("semko_ingest_rejected_total", "kind", "vote", "reason", tc.reason)
			brk := series("semko_broker_rejected_total", "reason", tc.brokerReason)
			before := m.read(t)
			// The device gets its PUBACK: resending bad input cannot help.
			if err := c.publish(topic, tc.payload); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			after := m.read(t)
			if d := after.get(ingest) - before.get(ingest); d != 1 {
				t.Errorf("%s: %s moved by %v, want 1", tc.name, ingest, d)
			}
			if d := after.get(brk) - before.get(brk); d != 1 {
				t.Errorf("%s: %s moved by %v, want 1", tc.name, brk, d)
			}
		}
		// A wrong clock is not bad input: the vote is kept apart, counted.
		for i, tc := range []struct {
			name    string
			payload []byte
		}{
			{"timestamp far in the future", vote(func(v *protocol.Vote) { v.Time, v.Seq = v.Time.Add(2*time.Hour), 1<<41 })},
			{"timestamp far in the past", vote(func(v *protocol.Vote) { v.Time, v.Seq = v.Time.AddDate(0, 0, -90), 1<<41+1 })},
		} {
			held := series("semko_ingest_clock_held_total", "kind", "vote")
			rejected := series("semko_ingest_rejected_total", "kind", "vote", "reason", "clock")
			before := m.read(t)
			if err := c.publish(topic, tc.payload); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			after := m.read(t)
			if d := after.get(held) - before.get(held); d != 1 {
				t.Errorf("%s (%d): %s moved by %v, want 1", tc.name, i, held, d)
			}
			if d := after.get(rejected) - before.get(rejected); d != 0 {
				t.Errorf("%s: %s moved by %v, want 0", tc.name, rejected, d)
			}
		}
	})

	t.Run("outside the ACL", func(t *testing.T) {
		denied := series("semko_broker_acl_denied_total")
		// A denied QoS 1 publish ends a 3.1.1 connection: one client each.
		for _, tc := range []struct {
			name, topic string
		}{
			{"topic outside the contract", "factory/line1/cmd"},
			{"kind devices may not publish", protocol.DeviceTopic(evil.ID, protocol.KindConfig)},
			{"another device's vote topic", protocol.DeviceTopic(victim.ID, protocol.KindVote)},
		} {
			c := dialMQTT(t, mqttAddr, hostileAddr, evil.ID, evil.ID, evil.Secret)
			v := protocol.SampleVote()
			v.Device, v.Time, v.Seq = victim.ID, time.Now().UTC(), 1<<40
			payload, _ := json.Marshal(v)
			before := m.read(t).get(denied)
			if err := c.publish(tc.topic, payload); err == nil {
				t.Errorf("%s: publish acknowledged", tc.name)
			}
			if d := m.read(t).get(denied) - before; d != 1 {
				t.Errorf("%s: %s moved by %v, want 1", tc.name, denied, d)
			}
		}
		c := dialMQTT(t, mqttAddr, hostileAddr, evil.ID, evil.ID, evil.Secret)
		for _, filter := range []string{
			protocol.DeviceTopic(victim.ID, protocol.KindCommand),
			protocol.UpstreamFilter(protocol.KindVote),
			"#",
		} {
			before := m.read(t).get(denied)
			if code := c.subscribe(filter); code != 0x80 {
				t.Errorf("subscribe %q: SUBACK code %#x, want 0x80 (refused)", filter, code)
			}
			if d := m.read(t).get(denied) - before; d != 1 {
				t.Errorf("subscribe %q: %s moved by %v, want 1", filter, denied, d)
			}
		}
	})

	t.Run("wrong and missing credentials", func(t *testing.T) {
		failures := series("semko_broker_auth_failures_total")
		for _, tc := range []struct{ name, clientID, user, secret, will string }{
			{"wrong secret for a real device", victim.ID, victim.ID, "guessed-secret-3b9d0f", ""},
			{"another device's secret", victim.ID, victim.ID, evil.Secret, ""},
			{"unknown user", "intruder", "intruder", "intruder-secret-88aa", ""},
			{"no credentials", "anonymous-1", "", "", ""},
			{"device secret under another client id", "not-" + evil.ID, evil.ID, evil.Secret, ""},
			// A will is a publish the broker makes later: the same ACL.
			{"will on another device's topic", evil.ID, evil.ID, evil.Secret, protocol.DeviceTopic(victim.ID, protocol.KindStatus)},
		} {
			before := m.read(t).get(failures)
			opts := paho.NewClientOptions().AddBroker("tcp://" + mqttAddr).SetClientID(tc.clientID).
				SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second).
				SetDialer(&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(hostileAddr)}})
			if tc.user != "" {
				opts.SetUsername(tc.user).SetPassword(tc.secret)
			}
			if tc.will != "" {
				opts.SetWill(tc.will, `{"v":1,"online":false}`, 1, true)
			}
			cl := paho.NewClient(opts)
			tok := cl.Connect()
			if !tok.WaitTimeout(10*time.Second) || tok.Error() == nil {
				cl.Disconnect(0)
				t.Errorf("%s: connected", tc.name)
				continue
			}
			if d := m.read(t).get(failures) - before; d != 1 {
				t.Errorf("%s: %s moved by %v, want 1", tc.name, failures, d)
			}
		}
	})

	t.Run("oversized packet and garbage instead of CONNECT", func(t *testing.T) {
		oversized := series("semko_broker_oversized_packets_total")
		before := m.read(t).get(oversized)
		c := dialMQTT(t, mqttAddr, hostileAddr, evil.ID, evil.ID, evil.Secret)
		if err := c.publish(protocol.DeviceTopic(evil.ID, protocol.KindVote), bytes.Repeat([]byte("x"), 20<<10)); err == nil {
			t.Error("a 20 KiB packet was acknowledged")
		}
		testwait.Within(t, 10*time.Second, "oversized counted", func() bool { return m.read(t).get(oversized)-before == 1 })

		bad := series("semko_broker_bad_connects_total")
		before = m.read(t).get(bad)
		conn := dialTCP(t, mqttAddr, hostileAddr)
		conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		if !closedBy(conn, 10*time.Second) {
			t.Error("garbage connection stayed open")
		}
		testwait.Within(t, 10*time.Second, "bad connect counted", func() bool { return m.read(t).get(bad)-before == 1 })
	})

	t.Run("connection storm from one address, half-open", func(t *testing.T) {
		limited := series("semko_broker_conn_limited_total")
		timeouts := series("semko_broker_connect_timeouts_total")
		before := m.read(t)
		conns := make([]net.Conn, stormConns)
		for i := range conns {
			conns[i] = dialTCP(t, mqttAddr, stormAddr)
		}
		start := time.Now()
		var closed sync.WaitGroup
		for _, c := range conns {
			closed.Go(func() { closedBy(c, 30*time.Second) })
		}
		closed.Wait()
		took := time.Since(start)
		// A connection is counted just after it is closed.
		var after scrape
		testwait.Within(t, 10*time.Second, "the storm counted", func() bool {
			after = m.read(t)
			return after.get(limited)-before.get(limited) >= stormConns-hostileLimit &&
				after.get(timeouts)-before.get(timeouts) >= hostileLimit
		})
		if d := after.get(limited) - before.get(limited); d != stormConns-hostileLimit {
			t.Errorf("%s moved by %v, want %d", limited, d, stormConns-hostileLimit)
		}
		if d := after.get(timeouts) - before.get(timeouts); d != hostileLimit {
			t.Errorf("%s moved by %v, want %d", timeouts, d, hostileLimit)
		}
		if took < hostileConnectTimeout/2 || took > 3*hostileConnectTimeout {
			t.Errorf("half-open connections closed after %v, connect timeout %v", took, hostileConnectTimeout)
		}
	})

	t.Run("API connection storm from one address", func(t *testing.T) {
		limited := series("semko_http_conn_limited_total")
		before := m.read(t).get(limited)
		conns := make([]net.Conn, stormConns)
		for i := range conns {
			conns[i] = dialTCP(t, httpAddr, stormAddr)
		}
		testwait.Within(t, 10*time.Second, "the API storm counted", func() bool {
			return m.read(t).get(limited)-before >= stormConns-hostileLimit
		})
		if d := m.read(t).get(limited) - before; d != stormConns-hostileLimit {
			t.Errorf("%s moved by %v, want %d", limited, d, stormConns-hostileLimit)
		}
		// Closed connections give their slots back: the address is served
		// again.
		for _, c := range conns {
			c.Close()
		}
		testwait.Within(t, 10*time.Second, "the storm's address served again", func() bool {
			c := dialTCP(t, httpAddr, stormAddr)
			defer c.Close()
			if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: semko\r\nConnection: close\r\n\r\n")); err != nil {
				return false
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			status, err := bufio.NewReader(c).ReadString('\n')
			return err == nil && strings.HasPrefix(status, "HTTP/1.1 200")
		})
	})

	t.Run("slow reader", func(t *testing.T) {
		// A device subscribes to its activations and never reads or
		// acknowledges again. Its queue stays bounded (MaxInflight); what
		// does not fit is dropped and counted, and publishing is not held.
		c := dialMQTT(t, mqttAddr, hostileAddr, slow.ID, slow.ID, slow.Secret)
		if code := c.subscribe(protocol.DeviceTopic(slow.ID, protocol.KindActivate)); code != 1 {
			t.Fatalf("subscribe own activate: SUBACK %#x", code)
		}
		dropped := series("semko_broker_dropped_total")
		before := m.read(t).get(dropped)
		const sent = 4 * hostileMaxInflight
		var slowest time.Duration
		for i := range sent {
			start := time.Now()
			activate(t, httpAddr, slow.ID, fmt.Sprintf("slow-%d", i))
			slowest = max(slowest, time.Since(start))
		}
		testwait.Within(t, 10*time.Second, "drops counted", func() bool {
			return m.read(t).get(dropped)-before >= sent-hostileMaxInflight
		})
		if slowest > 2*time.Second {
			t.Errorf("an activation took %v while a subscriber did not read", slowest)
		}
		after := m.read(t)
		inflight := after.get(series("semko_broker_inflight_messages"))
		t.Logf("slow reader: %d activations sent, %v dropped, %v held in flight, slowest publish %v",
			sent, after.get(dropped)-before, inflight, slowest.Round(time.Millisecond))
		if inflight > hostileMaxInflight+float64(len(honest.Devices)) {
			t.Errorf("%v messages in flight: the slow reader's queue is not bounded by %d", inflight, hostileMaxInflight)
		}
	})

	t.Run("API needs a token beyond health and metrics", func(t *testing.T) {
		base := "http://" + httpAddr
		for _, tc := range []struct {
			path, token string
			want        int
		}{
			{"/healthz", "", http.StatusOK},
			{"/metrics", "", http.StatusOK},
			{"/api/v1/devices", "", http.StatusUnauthorized},
			{"/api/v1/devices", "wrong-token", http.StatusUnauthorized},
			{"/api/v1/summary", strings.ToUpper(hostileAPIToken), http.StatusUnauthorized},
			{"/api/v1/devices", hostileAPIToken, http.StatusOK},
		} {
			req, _ := http.NewRequest(http.MethodGet, base+tc.path, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("GET %s with token %q: %d, want %d", tc.path, tc.token, resp.StatusCode, tc.want)
			}
		}
		for _, tc := range []struct {
			name, device, token, body string
			want                      int
		}{
			{"no token", victim.ID, "", `{"v":1,"id":"forged"}`, http.StatusUnauthorized},
			{"malformed body", victim.ID, hostileAPIToken, `{"v":1,"id":`, http.StatusBadRequest},
			{"wrong version", victim.ID, hostileAPIToken, `{"v":7,"id":"a-1"}`, http.StatusBadRequest},
			{"body of 64 KiB", victim.ID, hostileAPIToken, `{"v":1,"id":"` + strings.Repeat("x", 64<<10) + `"}`, http.StatusRequestEntityTooLarge},
			{"unknown device", "kp-nobody", hostileAPIToken, `{"v":1,"id":"a-2"}`, http.StatusNotFound},
			{"invalid device id", "kp%20x", hostileAPIToken, `{"v":1,"id":"a-3"}`, http.StatusBadRequest},
		} {
			req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/devices/"+tc.device+"/activate", strings.NewReader(tc.body))
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("activation, %s: %d, want %d", tc.name, resp.StatusCode, tc.want)
			}
		}
	})

	// The fleet finishes; the flood stops with it.
	var fleetErr error
	select {
	case fleetErr = <-fleetDone:
	case <-time.After(3 * time.Minute):
		t.Fatal("fleet did not finish")
	}
	close(stopFlood)
	fr := <-floodDone
	if fleetErr != nil {
		t.Fatalf("honest fleet: %v", fleetErr)
	}
	t.Logf("honest fleet of %d ran %v alongside the attacks", len(honest.Devices), time.Duration(fleetTook.Load()))
	if took := <-slowloris; took < 4*time.Second || took > 20*time.Second {
		t.Errorf("API slowloris cut after %v, want the 5 s header timeout", took)
	} else {
		t.Logf("API slowloris cut after %v", took.Round(10*time.Millisecond))
	}

	t.Run("flood held to the device's rate", func(t *testing.T) {
		// The broker reads a flooding device's publishes at its rate
		// (burst, then 50/s), so TCP backpressure stops the device, not
		// the broker. What it took is in InfluxDB, one point each.
		waitWritten(t, app)
		taken := countByDevice(t, db, `SELECT count(uptime_s) FROM heartbeat GROUP BY device`)[flooder.ID]
		delayed := m.read(t).get(series("semko_broker_rate_delayed_total"))
		t.Logf("flood: %d heartbeats attempted in %v at up to 2000/s, %d written before backpressure, "+
			"%d taken by the broker, %v publishes slowed", fr.attempted, fr.took.Round(time.Millisecond), fr.written, taken, delayed)
		if fr.err != nil {
			t.Errorf("flood: %v", fr.err)
		}
		if delayed == 0 {
			t.Error("no publish was slowed to the rate")
		}
		// Up to a second of tokens may be borrowed ahead (50).
		limit := int64(broker.DefaultPublishBurst + broker.DefaultPublishRate*(fr.took.Seconds()+1) + broker.DefaultPublishRate)
		if taken > limit {
			t.Errorf("broker took %d heartbeats from the flooder in %v; its rate allows %d", taken, fr.took, limit)
		}
		if int64(fr.written) < 2*limit {
			t.Errorf("the flooder wrote only %d messages: not a flood", fr.written)
		}
	})

	// Exactly what the honest customers pressed, device by device.
	waitWritten(t, app)
	total := tally.Total()
	// A press the keypad could not hand over inside its window (the edge
	// fsyncs before it answers; a loaded shared disk can take that long)
	// has an unknown outcome. Devices with none are compared exactly; a
	// device with some may hold at most that many points more.
	if total.Unsure > 3 {
		t.Fatalf("%d presses with unknown outcome: the machine is too loaded for a meaningful comparison", total.Unsure)
	}
	byDevice := tally.Devices()
	acts := countByDevice(t, db, `SELECT count(voted) FROM activation GROUP BY device`)
	invalid := countByDevice(t, db, `SELECT count(score) FROM vote WHERE valid='false' GROUP BY device`)
	var scores [5]map[string]int64
	for s := range scores {
		scores[s] = countByDevice(t, db, fmt.Sprintf(`SELECT count(score) FROM vote WHERE valid='true' AND score=%d GROUP BY device`, s+1))
	}
	exact := 0
	for _, d := range honest.Devices {
		want := byDevice[d.ID]
		got := map[string][2]int64{
			"activations": {acts[d.ID], int64(want.Activations)},
			"invalid":     {invalid[d.ID], int64(want.Invalid)},
		}
		for s := range scores {
			got[fmt.Sprintf("score %d", s+1)] = [2]int64{scores[s][d.ID], int64(want.Scores[s])}
		}
		var excess int64
		for what, gw := range got {
			if gw[0] < gw[1] || want.Unsure == 0 && gw[0] != gw[1] {
				t.Errorf("%s %s: %d in InfluxDB, fleet made %d", d.ID, what, gw[0], gw[1])
			}
			excess += gw[0] - gw[1]
		}
		if excess > int64(want.Unsure) {
			t.Errorf("%s: %d points more than pressed, only %d presses had an unknown outcome", d.ID, excess, want.Unsure)
		}
		if want.Unsure == 0 {
			exact++
		}
	}
	for _, id := range []string{evil.ID, flooder.ID, slow.ID} {
		for s := range scores {
			if n := scores[s][id]; n != 0 {
				t.Errorf("hostile device %s has %d votes of score %d in InfluxDB", id, n, s+1)
			}
		}
		if invalid[id] != 0 {
			t.Errorf("hostile device %s has %d invalid votes in InfluxDB", id, invalid[id])
		}
	}
	if want := len(honest.Devices) * hostileActivations; total.Activations > want || total.Activations+total.Unsure < want {
		t.Errorf("fleet made %d activations (%d unsure), want %d", total.Activations, total.Unsure, want)
	}
	t.Logf("InfluxDB holds the honest fleet's %d activations, %d votes %v and %d invalid presses; "+
		"exactly for %d of %d devices, %d presses unsure", total.Activations, total.Votes, total.Scores, total.Invalid,
		exact, len(honest.Devices), total.Unsure)

	// No secret reached the log: not the devices' (right or wrong), not
	// the API token.
	out := logs.String()
	secrets := []string{"guessed-secret-3b9d0f", "intruder-secret-88aa", hostileAPIToken}
	for _, d := range full.Devices {
		secrets = append(secrets, d.Secret)
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("the backend log contains the secret %q", s)
		}
	}
	for _, line := range []string{
		"mqtt connection refused", "mqtt access denied", "ingest: message rejected",
		"mqtt device over its publish rate, slowed down", "mqtt connection closed: no CONNECT within the connect timeout",
		"mqtt connection refused: too many from one address", "mqtt connection closed: packet larger than the limit",
		"mqtt connection closed: no valid CONNECT", "http connection refused: too many from one address",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("the backend log has no %q line", line)
		}
	}
}

// startHostileBackend runs the backend with the limits these tests
// exercise, its own logger, and a last say on the config (configure, when
// not nil).
func startHostileBackend(t *testing.T, db *influxlocal.Server, model *fleet.Model, log *slog.Logger,
	configure func(*backend.Config)) (*backend.App, string, string) {
	t.Helper()
	cfg := newTestConfig(t, model, db)
	cfg.MQTT.MaxConnsPerAddr = hostileLimit
	cfg.MQTT.ConnectTimeout = hostileConnectTimeout
	cfg.MQTT.MaxInflight = hostileMaxInflight
	cfg.HTTP.Token = hostileAPIToken
	cfg.HTTP.MaxConnsPerAddr = hostileLimit
	if configure != nil {
		configure(&cfg)
	}
	app := newApp(t, cfg, log)
	startApp(t, app)
	return app, app.MQTTAddr(), app.HTTPAddr()
}

// withoutDevices returns a copy of m without the given devices and their
// counters.
func withoutDevices(m *fleet.Model, ids ...string) *fleet.Model {
	out := *m
	out.Devices = slices.DeleteFunc(slices.Clone(m.Devices), func(d fleet.Device) bool { return slices.Contains(ids, d.ID) })
	out.Orgs = slices.Clone(m.Orgs)
	for i := range out.Orgs {
		out.Orgs[i].Sites = slices.Clone(out.Orgs[i].Sites)
		for j := range out.Orgs[i].Sites {
			s := &out.Orgs[i].Sites[j]
			s.Counters = slices.DeleteFunc(slices.Clone(s.Counters), func(c fleet.Counter) bool { return slices.Contains(ids, c.Device) })
		}
	}
	return &out
}

type floodResult struct {
	attempted, written int
	took               time.Duration
	err                error
}

// flood publishes valid heartbeats at QoS 0 on conn, an MQTT session of
// device, trying for 2000 per second, until stop closes. Writes block when
// the broker stops reading; closing stop resets the connection, which
// throws away whatever is still queued on it.
func flood(conn net.Conn, device string, stop <-chan struct{}) floodResult {
	_ = conn.SetDeadline(time.Time{}) // a blocked write is the point
	start := time.Now()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-stop:
		case <-done:
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST: the broker drops the unread backlog
		}
		conn.Close()
	}()
	topic := protocol.DeviceTopic(device, protocol.KindHeartbeat)
	hb := protocol.SampleHeartbeat()
	hb.Device = device
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var r floodResult
	for {
		select {
		case <-stop:
			r.took = time.Since(start)
			return r
		case <-tick.C:
		}
		for range 10 { // 10 per 5 ms: 2000 per second, 40 times the limit
			hb.Time = time.Now().UTC()
			payload, _ := json.Marshal(hb)
			pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: topic, Payload: payload}
			var buf bytes.Buffer
			if err := pk.PublishEncode(&buf); err != nil {
				r.err = err
				return r
			}
			r.attempted++
			if _, err := conn.Write(buf.Bytes()); err != nil {
				select {
				case <-stop: // the reset above
				default:
					r.err = fmt.Errorf("write %d: %w", r.written, err)
				}
				r.took = time.Since(start)
				return r
			}
			r.written++
		}
	}
}

// rawMQTT is a hand-driven MQTT 3.1.1 client: it does exactly what the
// test says, nothing more (no retries, no automatic acknowledgements).
type rawMQTT struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	id   uint16
}

func dialTCP(t *testing.T, addr, local string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, local, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialMQTT connects and expects the CONNACK to accept.
func dialMQTT(t *testing.T, addr, local, clientID, user, secret string) *rawMQTT {
	t.Helper()
	c, err := connectMQTT(t, dialTCP(t, addr, local), clientID, user, secret)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// connectMQTT sends CONNECT on conn and expects the CONNACK to accept.
func connectMQTT(t *testing.T, conn net.Conn, clientID, user, secret string) (*rawMQTT, error) {
	t.Helper()
	c := &rawMQTT{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, ClientIdentifier: clientID,
			UsernameFlag: true, Username: []byte(user), PasswordFlag: true, Password: []byte(secret),
		},
	})
	typ, body, err := c.read()
	if err != nil || typ != packets.Connack || len(body) != 2 || body[1] != 0 {
		return nil, fmt.Errorf("connect %s: CONNACK type %d body %v err %v", clientID, typ, body, err)
	}
	return c, nil
}

func (c *rawMQTT) send(pk packets.Packet) {
	c.t.Helper()
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, _ = c.conn.Write(buf.Bytes()) // a refused write shows as the missing answer
}

// read returns the next packet's type and body.
func (c *rawMQTT) read() (byte, []byte, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	first, err := c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return 0, nil, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, nil, err
	}
	return first >> 4, body, nil
}

// publish sends a QoS 1 PUBLISH and waits for its PUBACK; an error means
// none came (the broker closed the connection or withheld it).
func (c *rawMQTT) publish(topic string, payload []byte) error {
	c.id++
	c.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: topic, Payload: payload, PacketID: c.id,
	})
	for {
		typ, body, err := c.read()
		if err != nil {
			return fmt.Errorf("no PUBACK: %w", err)
		}
		if typ == packets.Puback && len(body) >= 2 && uint16(body[0])<<8|uint16(body[1]) == c.id {
			return nil
		}
	}
}

// subscribe sends a SUBSCRIBE at QoS 1 and returns the SUBACK's code.
func (c *rawMQTT) subscribe(filter string) byte {
	c.t.Helper()
	c.id++
	c.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: c.id,
		Filters: packets.Subscriptions{{Filter: filter, Qos: 1}},
	})
	for {
		typ, body, err := c.read()
		if err != nil {
			c.t.Fatalf("subscribe %q: %v", filter, err)
		}
		if typ == packets.Suback && len(body) == 3 {
			return body[2]
		}
	}
}

// closedBy reports whether the peer closes c within d.
func closedBy(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func activate(t *testing.T, httpAddr, device, id string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+httpAddr+"/api/v1/devices/"+device+"/activate",
		strings.NewReader(`{"v":1,"id":"`+id+`"}`))
	req.Header.Set("Authorization", "Bearer "+hostileAPIToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("activate %s: %d", device, resp.StatusCode)
	}
}

// series renders a Prometheus series name as /metrics prints it: labels
// in the given order, which must be alphabetical.
func series(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	var b strings.Builder
	b.WriteString(name + "{")
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", labels[i], labels[i+1])
	}
	b.WriteByte('}')
	return b.String()
}

// metricsReader scrapes /metrics.
type metricsReader struct {
	url    string
	client *http.Client // nil: http.DefaultClient
}

type scrape struct {
	t      *testing.T
	values map[string]float64
}

func (m *metricsReader) read(t *testing.T) scrape {
	t.Helper()
	out := scrape{t: t, values: map[string]float64{}}
	client := m.client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Get(m.url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out.values[line[:i]] = v
	}
	return out
}

// get returns the series' value; a missing series fails the test, since a
// counter that is not exported cannot be asserted on.
func (s scrape) get(series string) float64 {
	s.t.Helper()
	v, ok := s.values[series]
	if !ok {
		s.t.Fatalf("series not in /metrics: %s", series)
	}
	return v
}

// lockedBuffer is a log sink shared by the backend's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestMutualTLSAndHTTPS runs the backend as a production set-up would:
// MQTT over TLS with device certificates (mutual TLS) on top of the device
// secrets, and the API over HTTPS, still behind its token.
func TestMutualTLSAndHTTPS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts InfluxDB")
	}
	db := influxlocal.StartForTest(t)
	model := fleet.Generate(fleet.Spec{Seed: 5, Orgs: 1, SitesPerOrg: 1, CountersPerSite: 2})
	dev := model.Devices[0]
	dir := t.TempDir()
	ca := testpki.NewCA(t, "ca")
	caFile, _ := ca.WriteFiles(t, dir)
	serverCert, serverKey := ca.Issue(t, "server").WriteFiles(t, dir)
	client := ca.Issue(t, dev.ID)
	stranger := testpki.NewCA(t, "stranger-ca").Issue(t, "stranger-"+dev.ID)

	app, _, httpAddr := startHostileBackend(t, db, model, testLogger(t), func(cfg *backend.Config) {
		cfg.MQTT.TLSAddr = "127.0.0.1:0"
		cfg.MQTT.CertFile, cfg.MQTT.KeyFile, cfg.MQTT.ClientCAFile = serverCert, serverKey, caFile
		cfg.HTTP.CertFile, cfg.HTTP.KeyFile = serverCert, serverKey
	})
	tlsAddr := app.MQTTTLSAddr()
	roots := ca.Pool()
	https := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	m := &metricsReader{url: "https://" + httpAddr + "/metrics", client: https}

	dialTLS := func(t *testing.T, cert *testpki.Cert) net.Conn {
		tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		if cert != nil {
			tc.Certificates = []tls.Certificate{cert.Pair}
		}
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: tc}
		conn, err := d.Dial("tcp", tlsAddr)
		if err != nil {
			// A refused client certificate may already fail here.
			return nil
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}

	t.Run("device with certificate and secret", func(t *testing.T) {
		conn := dialTLS(t, client)
		if conn == nil {
			t.Fatal("TLS handshake failed")
		}
		c, err := connectMQTT(t, conn, dev.ID, dev.ID, dev.Secret)
		if err != nil {
			t.Fatal(err)
		}
		v := protocol.SampleVote()
		v.Device, v.Time, v.Seq = dev.ID, time.Now().UTC(), 1
		payload, _ := json.Marshal(v)
		if err := c.publish(protocol.DeviceTopic(dev.ID, protocol.KindVote), payload); err != nil {
			t.Fatal(err)
		}
		waitWritten(t, app)
		got := countByDevice(t, db, `SELECT count(score) FROM vote GROUP BY device`)
		if got[dev.ID] != 1 {
			t.Errorf("%d votes of %s in InfluxDB, want 1", got[dev.ID], dev.ID)
		}
	})

	bad := series("semko_broker_bad_connects_total")
	for _, tc := range []struct {
		name string
		cert *testpki.Cert
	}{
		{"no client certificate", nil},
		{"certificate from another CA", stranger},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := m.read(t).get(bad)
			if conn := dialTLS(t, tc.cert); conn != nil {
				if _, err := connectMQTT(t, conn, dev.ID, dev.ID, dev.Secret); err == nil {
					t.Fatal("connected")
				}
			}
			testwait.Within(t, 10*time.Second, "bad connect counted", func() bool { return m.read(t).get(bad)-before == 1 })
		})
	}

	t.Run("plain MQTT on the TLS port", func(t *testing.T) {
		before := m.read(t).get(bad)
		if _, err := connectMQTT(t, dialTCP(t, tlsAddr, "127.0.0.1"), dev.ID, dev.ID, dev.Secret); err == nil {
			t.Fatal("connected without TLS")
		}
		testwait.Within(t, 10*time.Second, "bad connect counted", func() bool { return m.read(t).get(bad)-before == 1 })
	})

	t.Run("certificate does not replace the secret", func(t *testing.T) {
		failures := series("semko_broker_auth_failures_total")
		before := m.read(t).get(failures)
		conn := dialTLS(t, client)
		if conn == nil {
			t.Fatal("TLS handshake failed")
		}
		if _, err := connectMQTT(t, conn, dev.ID, dev.ID, "not-the-secret"); err == nil {
			t.Fatal("connected with a certificate and a wrong secret")
		}
		if d := m.read(t).get(failures) - before; d != 1 {
			t.Errorf("%s moved by %v, want 1", failures, d)
		}
	})

	t.Run("HTTPS API with token", func(t *testing.T) {
		for _, tc := range []struct {
			path, token string
			want        int
		}{
			{"/healthz", "", http.StatusOK},
			{"/api/v1/devices", "", http.StatusUnauthorized},
			{"/api/v1/devices", hostileAPIToken, http.StatusOK},
		} {
			req, _ := http.NewRequest(http.MethodGet, "https://"+httpAddr+tc.path, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := https.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("GET %s: %d, want %d", tc.path, resp.StatusCode, tc.want)
			}
		}
		// Plain HTTP on the HTTPS port gets nothing but a refusal.
		resp, err := http.Get("http://" + httpAddr + "/api/v1/devices")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("plain HTTP to the HTTPS port: %d", resp.StatusCode)
			}
		}
	})
}
