package edge

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/semko/semko/protocol"
)

// handleDownstream applies what the backend sends: config, activations,
// commands. Commands wait for the keypad, so they run on their own
// goroutine (one at a time, counted in wg); everything else is quick.
func (a *Agent) handleDownstream(ctx context.Context, wg *sync.WaitGroup) {
	for {
		var m paho.Message
		select {
		case <-ctx.Done():
			return
		case b := <-a.beacons:
			a.setReference(b)
			continue
		case m = <-a.downstream:
		}
		t, err := protocol.ParseTopic(m.Topic())
		if err != nil || t.Device != a.cfg.Device {
			a.log.Warn("message on an unexpected topic ignored", "topic", m.Topic(), "err", err)
			continue
		}
		switch t.Kind {
		case protocol.KindConfig:
			if len(m.Payload()) == 0 {
				continue // a cleared retained config: keep the current one
			}
			a.applyConfig(m.Payload())
		case protocol.KindActivate:
			act, err := protocol.Decode[protocol.Activate](m.Payload())
			if err != nil {
				a.log.Warn("bad activate message", "err", err)
				continue
			}
			if err := a.Activate(ctx, act); err != nil {
				a.log.Warn("activation over mqtt failed", "activation", act.ID, "err", err)
			}
		case protocol.KindCommand:
			a.startCommand(ctx, wg, m.Payload())
		default:
			a.log.Warn("message of an unexpected kind ignored", "topic", m.Topic())
		}
	}
}

// applyConfig validates, applies and persists a config, and answers with
// ConfigApplied. An invalid config is refused and the current one kept.
func (a *Agent) applyConfig(payload []byte) {
	ans := protocol.ConfigApplied{V: protocol.Version, Device: a.cfg.Device, Time: a.timeNow(), OK: true}
	cfg, err := protocol.Decode[protocol.Config](payload)
	if err != nil {
		var peek struct {
			Version string `json:"version"`
		}
		_ = json.Unmarshal(payload, &peek)
		ans.Version, ans.OK, ans.Error = peek.Version, false, answerf("%v", err)
		if ans.Validate() != nil {
			ans.Version = "unknown"
		}
		a.log.Warn("config refused", "err", err)
		a.publishDirect(protocol.KindConfigApplied, ans)
		return
	}
	ans.Version = cfg.Version
	a.mu.Lock()
	a.conf = cfg
	a.rules.configure(cfg)
	a.mu.Unlock()
	if err := saveConfig(a.cfg.DataDir, cfg); err != nil {
		// Applied now, but a restart would fall back: say so.
		ans.OK, ans.Error = false, answerf("applied but not persisted: %v", err)
		a.log.Error("persist config", "err", err)
	}
	a.sendConfigToKeypad()
	kick(a.houseKick) // the heartbeat interval may have changed
	a.log.Info("config applied", "version", cfg.Version, "mode", cfg.Mode, "window_s", cfg.VoteWindowS)
	a.publishDirect(protocol.KindConfigApplied, ans)
}

func (a *Agent) startCommand(ctx context.Context, wg *sync.WaitGroup, payload []byte) {
	cmd, err := protocol.Decode[protocol.Command](payload)
	res := protocol.CommandResult{V: protocol.Version, Device: a.cfg.Device, ID: cmd.ID, Time: a.timeNow()}
	if err != nil {
		a.log.Warn("bad command", "err", err)
		if res.ID != "" && res.Validate() == nil {
			res.Error = answerf("%v", err)
			a.publishDirect(protocol.KindCommandResult, res)
		}
		return
	}
	select {
	case a.cmdSlot <- struct{}{}:
	default:
		res.Error = "busy: another command is running"
		a.publishDirect(protocol.KindCommandResult, res)
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { <-a.cmdSlot }()
		a.publishDirect(protocol.KindCommandResult, a.runCommand(ctx, cmd))
	}()
}

var errNoAnswer = errors.New("no answer")

func (a *Agent) runCommand(ctx context.Context, cmd protocol.Command) protocol.CommandResult {
	res := protocol.CommandResult{V: protocol.Version, Device: a.cfg.Device, ID: cmd.ID}
	switch cmd.Name {
	case protocol.CommandSelfTest:
		st, err := askKeypad(ctx, a, &a.testWait, protocol.FrameTest, a.cfg.CommandTimeout)
		if err != nil {
			res.Error = err.Error()
			break
		}
		res.OK = st.Pass
		res.Detail = map[string]string{"panel": bit(st.PanelOK), "light": bit(st.LightOK), "keys": st.KeyReport}
		if !st.Pass {
			res.Error = "self-test failed"
		}
	case protocol.CommandInfo:
		info, err := askKeypad(ctx, a, &a.infoWait, protocol.FrameInfo, a.cfg.CommandTimeout)
		if err != nil {
			res.Error = err.Error()
			break
		}
		a.mu.Lock()
		offset := a.clockOffset
		a.mu.Unlock()
		res.OK = true
		res.Detail = map[string]string{"fw": info.FW, "serial": info.Serial, "model": info.Model,
			"clock_offset_ms": strconv.FormatInt(offset.Milliseconds(), 10)}
	}
	res.Time = a.timeNow()
	return res
}

// askKeypad sends a bare request frame and waits for its answer, which the
// frame handler delivers through *slot.
func askKeypad[T any](ctx context.Context, a *Agent, slot *chan T, frameType string, timeout time.Duration) (T, error) {
	var zero T
	ch := make(chan T, 1)
	a.mu.Lock()
	*slot = ch
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		if *slot == ch {
			*slot = nil
		}
		a.mu.Unlock()
	}()
	if err := a.sendFrame(protocol.Frame{Type: frameType}); err != nil {
		return zero, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case v := <-ch:
		return v, nil
	case <-t.C:
		return zero, errNoAnswer
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

func bit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
