package edge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/semko/semko/edge/outbox"
	"github.com/semko/semko/protocol"
)

// readKeypad decodes frames off the serial line and queues them. It never
// waits on the agent's locks, so the line is always drained (net.Pipe, as
// the simulator uses, has no buffer at all). Bad lines are counted and
// skipped.
func (a *Agent) readKeypad(ctx context.Context, frames chan<- protocol.Frame) {
	defer close(frames)
	fr := protocol.NewFrameReader(a.kp)
	for {
		f, err := fr.ReadFrame()
		if errors.Is(err, protocol.ErrFrame) || errors.Is(err, protocol.ErrChecksum) {
			a.badFrame(err)
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				a.log.Error("keypad line closed", "err", err)
			}
			return
		}
		select {
		case frames <- f:
		case <-ctx.Done():
			return
		}
	}
}

func (a *Agent) badFrame(err error) {
	a.badFrames.Add(1)
	a.mu.Lock()
	a.errCount++
	a.mu.Unlock()
	a.log.Warn("bad keypad frame skipped", "err", err)
}

func (a *Agent) handleFrames(ctx context.Context, frames <-chan protocol.Frame) {
	for {
		select {
		case <-ctx.Done():
			return
		case f, ok := <-frames:
			if !ok {
				return
			}
			a.handleFrame(f)
		}
	}
}

func (a *Agent) handleFrame(f protocol.Frame) {
	switch f.Type {
	case protocol.FrameKey:
		kp, err := protocol.ParseKeyPress(f)
		if err != nil {
			a.badFrame(err)
			return
		}
		a.press(kp)
	case protocol.FrameBoot:
		info, err := protocol.ParseDeviceInfo(f)
		if err != nil {
			a.badFrame(err)
			return
		}
		a.booted(info)
	case protocol.FrameInfo:
		info, err := protocol.ParseDeviceInfo(f)
		if err != nil {
			a.badFrame(err)
			return
		}
		a.mu.Lock()
		a.fw, a.serial = info.FW, info.Serial
		a.clockOffset = info.Clock.Sub(a.timeNow())
		if a.infoWait != nil {
			select {
			case a.infoWait <- info:
			default:
			}
		}
		a.mu.Unlock()
	case protocol.FrameTest:
		st, err := protocol.ParseSelfTest(f)
		if err != nil {
			a.badFrame(err)
			return
		}
		a.mu.Lock()
		a.panelOK, a.lightOK = st.PanelOK, st.LightOK
		if !st.Pass {
			a.errCount++
		}
		if a.testWait != nil {
			select {
			case a.testWait <- st:
			default:
			}
		}
		a.mu.Unlock()
	case protocol.FrameErr:
		code := ""
		if len(f.Args) > 0 {
			code = strings.ToLower(f.Args[0])
		}
		a.mu.Lock()
		a.errCount++
		switch code {
		case "panel":
			a.panelOK = false
		case "light", "backlight":
			a.lightOK = false
		}
		a.mu.Unlock()
		a.log.Warn("keypad reports a fault", "frame", f.String())
	default:
		a.badFrame(fmt.Errorf("%w: unexpected type %q", protocol.ErrFrame, f.Type))
	}
}

// booted handles BOOT: the keypad restarted, lost its panel, light and
// kseq counter, and must be armed again if a window is open.
func (a *Agent) booted(info protocol.DeviceInfo) {
	a.mu.Lock()
	a.fw, a.serial = info.FW, info.Serial
	a.kseqs.reset()
	a.lightLevel = -1
	var remaining time.Duration
	if w := a.rules.open; w != nil {
		remaining = w.deadline.Sub(a.cfg.Now())
	}
	a.mu.Unlock()
	a.log.Info("keypad booted", "fw", info.FW, "serial", info.Serial, "model", info.Model)
	a.sendConfigToKeypad()
	if remaining > 0 {
		if err := a.sendFrame(protocol.Frame{Type: protocol.FrameArm, Args: []string{strconv.FormatInt(remaining.Milliseconds(), 10)}}); err != nil {
			a.log.Warn("re-arm keypad", "err", err)
		}
	}
}

// press turns a KEY into a vote. The keypad hears TAKEN only once the vote
// is durable; a press the outbox refused gets no answer, so the keypad
// keeps it and resends, and the resend is judged afresh.
func (a *Agent) press(kp protocol.KeyPress) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.cfg.Now()
	// The vote's ts: the backend's time when the agent has it, else the
	// wall clock's, replaced once the boot's first reference arrives.
	// The keypad's clock is compared with the same time.
	ts, synced, mono := a.now()
	a.clockOffset = kp.Clock.Sub(ts)
	taken := protocol.Frame{Type: protocol.FrameTaken, Args: []string{strconv.FormatUint(uint64(kp.Seq), 10)}}
	if a.kseqs.has(kp.Seq) {
		a.dupPresses.Add(1)
		a.sendOrLog(taken)
		return
	}
	p := a.rules.judge(now, kp.Key)
	if synced {
		p.vote.Time = stamp(ts, a.rules.lastStamp)
	} else {
		p.vote.Time, p.unstamped = ts, true
	}
	v := p.vote
	v.Device = a.cfg.Device
	_, err := a.box.Append(protocol.KindVote, func(seq uint64) ([]byte, error) {
		v.Seq = seq
		data, err := protocol.Encode(v)
		if err == nil && p.unstamped {
			data = markUnstamped(data, a.bootID, mono)
		}
		return data, err
	})
	if err != nil {
		if errors.Is(err, outbox.ErrFull) {
			a.outboxFull.Add(1)
		}
		a.log.Error("press not stored; the keypad will resend it", "kseq", kp.Seq, "err", err)
		return
	}
	kick(a.outboxKick)
	a.rules.commit(p)
	a.kseqs.add(kp.Seq)
	a.presses[kp.Key-1]++
	a.pressTotal.Add(1)
	if v.Valid {
		a.votesValid.Add(1)
	} else {
		a.votesInvalid.Add(1)
	}
	a.log.Debug("vote stored", "seq", v.Seq, "score", v.Score, "valid", v.Valid, "reason", v.Reason, "activation", v.Activation)
	a.sendOrLog(taken)
	if p.closes != nil {
		a.closeWindowRecord(p.closes, true)
		if a.rules.mode != protocol.ModeAlwaysOn {
			a.sendOrLog(protocol.Frame{Type: protocol.FrameDisarm})
		}
	}
}

func (a *Agent) sendOrLog(f protocol.Frame) {
	if err := a.sendFrame(f); err != nil {
		a.log.Warn("keypad write failed", "frame", f.Type, "err", err)
	}
}

// sendFrame writes one frame, bounded by a write deadline when the line
// supports one (net.Conn, net.Pipe), so a keypad that stopped reading cannot
// block the agent.
func (a *Agent) sendFrame(f protocol.Frame) error {
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	if d, ok := a.kp.(interface{ SetWriteDeadline(time.Time) error }); ok {
		_ = d.SetWriteDeadline(time.Now().Add(keypadWriteTimeout))
	}
	if _, err := a.kp.Write(f.Bytes()); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrKeypad, f.Type, err)
	}
	return nil
}

// sendConfigToKeypad sends the panel text and the backlight level.
func (a *Agent) sendConfigToKeypad() {
	a.mu.Lock()
	text, ok := a.conf.Panel.Texts[a.conf.Panel.Lang]
	a.lightLevel = -1
	a.mu.Unlock()
	if ok {
		a.sendOrLog(protocol.Frame{Type: protocol.FramePanel, Args: []string{text}})
	}
	a.applyBacklightSchedule()
}

// applyBacklightSchedule sends LIGHT when the level the schedule asks for
// differs from the last one sent.
func (a *Agent) applyBacklightSchedule() {
	a.mu.Lock()
	defer a.mu.Unlock()
	want := backlightLevel(a.conf.Backlight, a.cfg.Now())
	if want == a.lightLevel {
		return
	}
	if err := a.sendFrame(protocol.Frame{Type: protocol.FrameLight, Args: []string{strconv.Itoa(want)}}); err != nil {
		a.log.Warn("set backlight", "err", err)
		return
	}
	a.lightLevel = want
}

// backlightLevel is b.Level inside the schedule (days, on..off in b.Zone)
// and 0 outside it. Unparsable parts of a schedule count as "always":
// config validation has already refused bad times.
func backlightLevel(b protocol.Backlight, now time.Time) int {
	if b.On == "" && b.Off == "" && b.Days == "" {
		return b.Level
	}
	if b.Zone != "" {
		if loc, err := time.LoadLocation(b.Zone); err == nil {
			now = now.In(loc)
		}
	}
	if b.Days != "" && !dayIn(b.Days, now.Weekday()) {
		return 0
	}
	on, errOn := time.Parse("15:04", b.On)
	off, errOff := time.Parse("15:04", b.Off)
	if errOn != nil || errOff != nil {
		return b.Level
	}
	m := now.Hour()*60 + now.Minute()
	from, to := on.Hour()*60+on.Minute(), off.Hour()*60+off.Minute()
	inside := m >= from && m < to
	if from > to { // over midnight
		inside = m >= from || m < to
	}
	if inside {
		return b.Level
	}
	return 0
}

// dayIn reports whether d is in a list like "1-5" or "1,3,6-7" (1 is
// Monday, 7 Sunday). An unreadable list matches every day.
func dayIn(list string, d time.Weekday) bool {
	n := int(d)
	if n == 0 {
		n = 7
	}
	for part := range strings.SplitSeq(list, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		l, err1 := strconv.Atoi(lo)
		h := l
		var err2 error
		if isRange {
			h, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil {
			return true
		}
		if n >= l && n <= h {
			return true
		}
	}
	return false
}
