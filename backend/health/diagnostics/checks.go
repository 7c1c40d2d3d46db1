package diagnostics

import (
	"fmt"
	"strconv"
	"time"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/fleet/live"
	"github.com/semko/semko/fleet/registry"
)

// unit is one installed unit as the checks see it.
type unit struct {
	live.DeviceState
	Model string
	// configured is the heartbeat interval remote configuration gives
	// the unit; zero for units not under remote configuration.
	configured time.Duration
	subject    alert.Subject
	where      string // "kp-0012 at Counter 3, Sofia centre" for messages
}

// units returns the units installed at a counter; spares in stock are not
// watched.
func (d *Diagnostics) units() []unit {
	reg := d.opts.Registry()
	states := d.opts.Devices()
	out := make([]unit, 0, len(states))
	for _, st := range states {
		p := st.Placement
		if p.Counter == "" {
			continue
		}
		u := unit{
			DeviceState: st,
			subject:     alert.Subject{Org: p.Org, Site: p.Site, Counter: p.Counter, Device: st.Device},
		}
		if dev, ok := reg.Device(st.Device); ok {
			u.Model = dev.Model
		}
		if reg.Managed(st.Device) {
			if cfg, err := reg.Config(st.Device); err == nil {
				u.configured = time.Duration(cfg.HeartbeatS) * time.Second
			}
		}
		u.where = describe(reg, st.Device, p)
		out = append(out, u)
	}
	return out
}

// describe names a unit for people: its id, counter and site by name.
func describe(reg *registry.Registry, device string, p registry.Placement) string {
	counter, site := p.Counter, p.Site
	if c, ok := reg.Counter(p.Counter); ok && c.Name != "" {
		counter = c.Name
	}
	if s, ok := reg.Site(p.Site); ok && s.Name != "" {
		site = s.Name
	}
	return fmt.Sprintf("%s at %s, %s", device, counter, site)
}

func (u unit) finding(kind alert.Kind, sev alert.Severity, now time.Time, msg, hint string, details map[string]string) alert.Finding {
	return alert.Finding{
		Kind: kind, Severity: sev, Subject: u.subject, Message: msg, Hint: hint, Time: now, Details: details,
	}
}

// offlineTimeout is how long unit u may go without a heartbeat.
func (d *Diagnostics) offlineTimeout(u unit) time.Duration {
	c := d.cfg.Offline
	if t, ok := c.PerDevice[u.Device]; ok && t > 0 {
		return t
	}
	if t, ok := c.PerModel[u.Model]; ok && t > 0 {
		return t
	}
	if c.Timeout > 0 {
		return c.Timeout
	}
	// The longer of the configured and the observed interval: a unit that
	// has not applied a longer interval yet, or one whose heartbeats come
	// slower than configured, is not offline for that.
	every := max(u.HeartbeatEvery, u.configured)
	if every <= 0 {
		every = c.DefaultHeartbeat
	}
	return time.Duration(c.HeartbeatMultiple * float64(every))
}

// offline: no heartbeat for longer than the unit's timeout. A unit not
// heard from since the backend started is measured from the start, so a
// restart does not report the whole fleet offline.
func (d *Diagnostics) offline(now time.Time) []alert.Finding {
	var out []alert.Finding
	for _, u := range d.units() {
		last := u.HeartbeatReceived
		from := last
		if from.Before(d.started) {
			from = d.started
		}
		timeout := d.offlineTimeout(u)
		silent := now.Sub(from)
		if silent <= timeout {
			continue
		}
		msg := fmt.Sprintf("Keypad %s has sent no heartbeat for %s (timeout %s)", u.where, round(silent), round(timeout))
		if last.IsZero() {
			msg = fmt.Sprintf("Keypad %s has sent no heartbeat since the backend started %s ago (timeout %s)", u.where, round(silent), round(timeout))
		}
		details := map[string]string{"timeout": timeout.String(), "silent_for": round(silent).String(), "online": strconv.FormatBool(u.Online)}
		if !last.IsZero() {
			details["last_heartbeat"] = last.UTC().Format(time.RFC3339)
		}
		out = append(out, u.finding(alert.KindOffline, alert.SeverityCritical, now, msg,
			"Check that the counter PC is on and networked and that semko-edge runs (systemctl status semko-edge); then check the keypad cable.",
			details))
	}
	return out
}

// window keeps a unit's counters at the start of the current observation
// window and the verdict of the last complete one.
type window[T any] struct {
	start   time.Time
	boot    string
	base    T
	closed  uint64         // activations closed at the start
	verdict *alert.Finding // of the last complete window, nil when fine
}

// stuckKeys compares each unit's press counters with the start of its
// window; a verdict stands until the next window completes.
func (d *Diagnostics) stuckKeys(now time.Time) []alert.Finding {
	c := d.cfg.StuckKey
	units := d.units()
	var out []alert.Finding
	d.mu.Lock()
	defer d.mu.Unlock()
	seen := make(map[string]bool, len(units))
	for _, u := range units {
		seen[u.Device] = true
		if u.HeartbeatReceived.IsZero() {
			continue
		}
		w := d.stuck[u.Device]
		presses := u.Health.Presses
		if w == nil || w.boot != u.BootID || lower(presses, w.base) {
			// First sight or a restarted edge: counters started again.
			var verdict *alert.Finding
			if w != nil {
				verdict = w.verdict
			}
			w = &window[[5]uint64]{start: now, boot: u.BootID, base: presses, closed: u.Activity.Closed, verdict: verdict}
			d.stuck[u.Device] = w
		} else if now.Sub(w.start) >= c.Window {
			w.verdict = d.judgeKeys(u, w, now)
			w.start, w.base, w.closed = now, presses, u.Activity.Closed
		}
		if w.verdict != nil {
			out = append(out, *w.verdict)
		}
	}
	for id := range d.stuck {
		if !seen[id] {
			delete(d.stuck, id)
		}
	}
	return out
}

// judgeKeys gives the verdict of one complete window; d.mu held.
func (d *Diagnostics) judgeKeys(u unit, w *window[[5]uint64], now time.Time) *alert.Finding {
	c := d.cfg.StuckKey
	var delta [5]uint64
	var total uint64
	for k := range delta {
		delta[k] = u.Health.Presses[k] - w.base[k]
		total += delta[k]
	}
	activations := u.Activity.Closed - w.closed
	span := round(now.Sub(w.start))
	for k, n := range delta {
		var why string
		switch {
		// A customer presses once per activation (a stray or repeated
		// press now and then); a key pressed far more often than there
		// were activations presses itself. Units in always-on mode never
		// have activations: only the share rule applies to them.
		case u.Activity.Closed > 0 && n >= activations+uint64(c.MinPresses):
			why = fmt.Sprintf("key %d was pressed %d times in %s, with %d activations", k+1, n, span, activations)
		case total >= uint64(c.MinPresses) && float64(n) >= c.MaxShare*float64(total):
			why = fmt.Sprintf("key %d took %d of %d presses in %s (%d activations)", k+1, n, total, span, activations)
		default:
			continue
		}
		f := u.finding(alert.KindStuckKey, alert.SeverityWarning, now,
			fmt.Sprintf("Keypad %s: %s", u.where, why),
			fmt.Sprintf("Free or clean key %d; if it keeps pressing itself, replace the keypad. Its presses are stored as invalid and do not count as ratings.", k+1),
			map[string]string{"key": strconv.Itoa(k + 1), "presses": strconv.FormatUint(n, 10),
				"total": strconv.FormatUint(total, 10), "activations": strconv.FormatUint(activations, 10), "window": span.String()})
		return &f
	}
	return nil
}

func lower(now, before [5]uint64) bool {
	for k := range now {
		if now[k] < before[k] {
			return true
		}
	}
	return false
}

// hardware: the unit reports its panel or backlight broken.
func (d *Diagnostics) hardware(now time.Time) []alert.Finding {
	var out []alert.Finding
	for _, u := range d.units() {
		if u.HeartbeatReceived.IsZero() {
			continue
		}
		details := map[string]string{"errors": strconv.FormatUint(u.Health.Errors, 10)}
		if !u.Health.PanelOK {
			out = append(out, u.finding(alert.KindDeadPanel, alert.SeverityWarning, now,
				fmt.Sprintf("Keypad %s reports its instruction panel broken", u.where),
				"Check the panel's ribbon cable; replace the keypad's front if the panel stays dark after a power cycle.", details))
		}
		if !u.Health.BacklightOK {
			out = append(out, u.finding(alert.KindDeadBacklight, alert.SeverityWarning, now,
				fmt.Sprintf("Keypad %s reports its backlight broken", u.where),
				"Customers may not see the keypad: check the backlight supply and replace the backlight module.", details))
		}
	}
	return out
}

// silent: activations keep closing without a vote.
func (d *Diagnostics) silent(now time.Time) []alert.Finding {
	c := d.cfg.Silent
	var out []alert.Finding
	for _, u := range d.units() {
		a := u.Activity
		if a.UnvotedStreak < c.MinActivations || now.Sub(a.UnvotedSince) < c.Stretch {
			continue
		}
		out = append(out, u.finding(alert.KindSilentUnit, alert.SeverityCritical, now,
			fmt.Sprintf("Keypad %s: the last %d activations (over %s) closed without a vote", u.where, a.UnvotedStreak, round(now.Sub(a.UnvotedSince))),
			"The unit looks healthy but no key press arrives: press each key after the next service and run a self-test; check the keypad cable or replace the keypad.",
			map[string]string{"unvoted": strconv.Itoa(a.UnvotedStreak), "since": a.UnvotedSince.UTC().Format(time.RFC3339)}))
	}
	return out
}

// clockDrift: the keypad clock is off by more than the bound.
func (d *Diagnostics) clockDrift(now time.Time) []alert.Finding {
	bound := d.cfg.ClockDrift.Max
	var out []alert.Finding
	for _, u := range d.units() {
		if u.HeartbeatReceived.IsZero() {
			continue
		}
		off := time.Duration(u.Health.ClockOffsetMS) * time.Millisecond
		if off.Abs() <= bound {
			continue
		}
		out = append(out, u.finding(alert.KindClockDrift, alert.SeverityWarning, now,
			fmt.Sprintf("Keypad %s: its clock is off by %s (bound %s)", u.where, round(off), bound),
			"The edge corrects press times for now; set the keypad clock (power-cycle it) and replace its clock battery if it drifts again.",
			map[string]string{"offset_ms": strconv.FormatInt(u.Health.ClockOffsetMS, 10)}))
	}
	return out
}

// edgeClock: the edge's clock is off the backend's by more than the bound,
// or the backend held votes of it apart for their time recently. With
// the time beacon the edge's votes stay right either way; the finding
// says whether they do.
func (d *Diagnostics) edgeClock(now time.Time) []alert.Finding {
	c := d.cfg.EdgeClock
	var out []alert.Finding
	for _, u := range d.units() {
		k := u.Clock
		off := time.Duration(k.OffsetMS) * time.Millisecond
		wrong := k.Measured && off.Abs() > c.Max
		held := k.Held > 0 && !k.HeldLast.IsZero() && now.Sub(k.HeldLast) < c.HeldFor
		if !wrong && !held {
			continue
		}
		details := map[string]string{"offset_ms": strconv.FormatInt(k.OffsetMS, 10), "synced": strconv.FormatBool(k.Synced)}
		var msg, hint string
		switch {
		case held:
			details["held"] = strconv.FormatUint(k.Held, 10)
			details["held_offset_ms"] = strconv.FormatInt(k.HeldOffsetMS, 10)
			msg = fmt.Sprintf("Edge %s: %d votes or records held apart since the backend started, their time %s off (last %s)",
				u.where, k.Held, round(time.Duration(k.HeldOffsetMS)*time.Millisecond), k.HeldLast.UTC().Format(time.RFC3339))
			hint = "The device stamps votes on its own clock and it is wrong: set its clock (NTP) or update the edge agent so it uses the backend's time; held votes are in the vote_held measurement."
		case k.Synced:
			msg = fmt.Sprintf("Edge %s: its clock is off by %s (bound %s); its votes are stamped on the backend's time", u.where, round(off), c.Max)
			hint = "Votes are not affected; set the edge's clock (NTP) so its logs and other software agree."
		default:
			msg = fmt.Sprintf("Edge %s: its clock is off by %s (bound %s) and it has no time reference from the backend yet", u.where, round(off), c.Max)
			hint = "Its presses wait in its outbox until the backend's time beacon reaches it; check that it is connected, and set its clock (NTP)."
		}
		out = append(out, u.finding(alert.KindEdgeClock, alert.SeverityWarning, now, msg, hint, details))
	}
	return out
}

// outbox: the edge's backlog is large and not shrinking over a window.
func (d *Diagnostics) outbox(now time.Time) []alert.Finding {
	c := d.cfg.Outbox
	units := d.units()
	var out []alert.Finding
	d.mu.Lock()
	defer d.mu.Unlock()
	seen := make(map[string]bool, len(units))
	for _, u := range units {
		seen[u.Device] = true
		if u.HeartbeatReceived.IsZero() {
			continue
		}
		w := d.backlog[u.Device]
		switch {
		case w == nil:
			w = &window[int]{start: now, base: u.Outbox}
			d.backlog[u.Device] = w
		case now.Sub(w.start) >= c.Window:
			w.verdict = nil
			if u.Outbox >= c.Min && u.Outbox >= w.base {
				f := u.finding(alert.KindOutboxBacklog, alert.SeverityWarning, now,
					fmt.Sprintf("Keypad %s: the edge holds %d undelivered messages, %d %s ago", u.where, u.Outbox, w.base, round(now.Sub(w.start))),
					"Votes are safe on the edge but not reaching the backend: check the edge's log for broker errors and its network; the backend's /readyz tells whether it accepts messages.",
					map[string]string{"outbox": strconv.Itoa(u.Outbox), "before": strconv.Itoa(w.base)})
				w.verdict = &f
			}
			w.start, w.base = now, u.Outbox
		}
		if w.verdict != nil {
			out = append(out, *w.verdict)
		}
	}
	for id := range d.backlog {
		if !seen[id] {
			delete(d.backlog, id)
		}
	}
	return out
}

// firmware: the unit runs firmware older than the target.
func (d *Diagnostics) firmware(now time.Time) []alert.Finding {
	target := d.cfg.Firmware.Target
	if target == "" {
		return nil
	}
	var out []alert.Finding
	for _, u := range d.units() {
		if u.FW == "" || u.FW == "unknown" || compareVersions(u.FW, target) >= 0 {
			continue
		}
		out = append(out, u.finding(alert.KindOutdatedFirmware, alert.SeverityInfo, now,
			fmt.Sprintf("Keypad %s runs firmware %s, older than the fleet's %s", u.where, u.FW, target),
			fmt.Sprintf("Update the keypad to firmware %s at the next visit.", target),
			map[string]string{"fw": u.FW, "target": target}))
	}
	return out
}

// round shortens a duration for people.
func round(d time.Duration) time.Duration {
	switch {
	case d.Abs() >= time.Hour:
		return d.Round(time.Minute)
	case d.Abs() >= time.Minute:
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}
