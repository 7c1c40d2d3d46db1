package diagnostics

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/protocol"
)

// pendingTest is a self-test sent and not yet judged.
type pendingTest struct {
	id   string
	sent time.Time
}

// sendSelfTests publishes the self-test command to every online unit. A
// unit still pending from an earlier round is judged first by
// judgeSelfTests; sending again replaces its pending test.
func (d *Diagnostics) sendSelfTests(now time.Time) error {
	if d.opts.Publisher == nil {
		return fmt.Errorf("%w: self-test needs a Publisher", ErrOptions)
	}
	id := "selftest-" + strconv.FormatInt(now.Unix(), 10)
	var errs []error
	sent := 0
	for _, u := range d.units() {
		if !u.Online {
			continue // an offline unit is the offline check's business
		}
		payload, err := protocol.Encode(protocol.Command{V: protocol.Version, ID: id, Name: protocol.CommandSelfTest, Time: now})
		if err != nil {
			return fmt.Errorf("encode self-test: %w", err)
		}
		if err := d.opts.Publisher.Publish(protocol.DeviceTopic(u.Device, protocol.KindCommand), payload, false, 1); err != nil {
			errs = append(errs, fmt.Errorf("send self-test to %s: %w", u.Device, err))
			continue
		}
		d.mu.Lock()
		d.pending[u.Device] = pendingTest{id: id, sent: now}
		d.mu.Unlock()
		sent++
	}
	d.log.Info("diagnostics: self-test sent", "id", id, "units", sent)
	return errors.Join(errs...)
}

// judgeSelfTests looks for the answer of every pending self-test: a
// passed test resolves earlier self-test findings, a failed one raises
// selftest_failed, and no answer by the deadline raises selftest_missing.
func (d *Diagnostics) judgeSelfTests(ctx context.Context, now time.Time) error {
	d.mu.Lock()
	if len(d.pending) == 0 {
		d.mu.Unlock()
		return nil
	}
	pending := make(map[string]pendingTest, len(d.pending))
	for k, v := range d.pending {
		pending[k] = v
	}
	d.mu.Unlock()

	var errs []error
	judged := func(device string) {
		d.mu.Lock()
		if d.pending[device] == pending[device] {
			delete(d.pending, device)
		}
		d.mu.Unlock()
	}
	for _, u := range d.units() {
		p, ok := pending[u.Device]
		if !ok {
			continue
		}
		res, answered := u.Command(p.id)
		switch {
		case answered && res.OK:
			errs = append(errs,
				d.resolve(ctx, alert.KindSelfTestFailed, u.subject, "self-test passed"),
				d.resolve(ctx, alert.KindSelfTestMissing, u.subject, "self-test answered"))
			judged(u.Device)
		case answered:
			details := map[string]string{"command": p.id, "error": res.Error}
			for k, v := range res.Detail {
				details[k] = v
			}
			f := u.finding(alert.KindSelfTestFailed, alert.SeverityWarning, now,
				fmt.Sprintf("Keypad %s failed its self-test: %s %s", u.where, res.Error, describeSelfTest(res.Detail)),
				"Visit the counter: the report names the part that failed (panel, light, keys as 1 = works); replace the keypad if a key or the panel is dead.",
				details)
			// A failure already open stays as it is: raise does nothing then.
			errs = append(errs, d.resolve(ctx, alert.KindSelfTestMissing, u.subject, "self-test answered"), d.raise(ctx, f))
			judged(u.Device)
		case now.Sub(p.sent) >= d.cfg.SelfTest.Deadline:
			f := u.finding(alert.KindSelfTestMissing, alert.SeverityWarning, now,
				fmt.Sprintf("Keypad %s did not answer the self-test sent %s ago", u.where, round(now.Sub(p.sent))),
				"The edge may be hung or too old to run commands: restart semko-edge on the counter PC and check its version and log.",
				map[string]string{"command": p.id, "sent": p.sent.UTC().Format(time.RFC3339)})
			errs = append(errs, d.raise(ctx, f))
			judged(u.Device)
		}
	}
	// Units that left the fleet while pending.
	d.mu.Lock()
	for id := range d.pending {
		if _, ok := pending[id]; ok && !d.known(id) {
			delete(d.pending, id)
		}
	}
	d.mu.Unlock()
	return errors.Join(errs...)
}

// known reports whether id is in the fleet.
func (d *Diagnostics) known(id string) bool {
	_, ok := d.opts.Registry().Device(id)
	return ok
}

func describeSelfTest(detail map[string]string) string {
	if len(detail) == 0 {
		return ""
	}
	return fmt.Sprintf("(panel %s, light %s, keys %s)", or1(detail["panel"]), or1(detail["light"]), or1(detail["keys"]))
}

func or1(s string) string {
	if s == "" {
		return "?"
	}
	return s
}
