package diagnostics

import (
	"context"
	"fmt"
	"strconv"

	"github.com/semko/semko/protocol"
)

// SelfTestDevice sends the self-test command to one unit now ("run
// self-test now" on its console page, after a repair). Its answer is
// judged with the next round of the self-test check, like a scheduled one.
func (d *Diagnostics) SelfTestDevice(_ context.Context, device string) error {
	if d.opts.Publisher == nil {
		return fmt.Errorf("%w: self-test needs a Publisher", ErrOptions)
	}
	now := d.opts.Clock.Now()
	id := "selftest-" + device + "-" + strconv.FormatInt(now.Unix(), 10)
	payload, err := protocol.Encode(protocol.Command{V: protocol.Version, ID: id, Name: protocol.CommandSelfTest, Time: now})
	if err != nil {
		return fmt.Errorf("encode self-test: %w", err)
	}
	if err := d.opts.Publisher.Publish(protocol.DeviceTopic(device, protocol.KindCommand), payload, false, 1); err != nil {
		return fmt.Errorf("send self-test to %s: %w", device, err)
	}
	d.mu.Lock()
	d.pending[device] = pendingTest{id: id, sent: now}
	d.mu.Unlock()
	d.log.Info("diagnostics: self-test sent to one unit", "id", id, "device", device)
	return nil
}
