package protocol

import "time"

// Sample messages, valid, shared by tests, fuzz seeds and the README. They
// are functions so callers can change a copy freely.

var sampleTime = time.Date(2026, 11, 24, 9, 30, 15, 250_000_000, time.UTC)

// SampleVote returns a valid vote.
func SampleVote() Vote {
	return Vote{
		V: Version, Device: "kp-0001", Seq: 42, Time: sampleTime, Score: 4, Scale: ScaleCSAT5,
		Channel: ChannelKeypad, Valid: true, Activation: "act-7f3a", Service: "passport",
		Operator: "op-017", ServiceS: 312, LatencyMS: 2400,
	}
}

// SampleActivate returns a valid activation request.
func SampleActivate() Activate {
	return Activate{
		V: Version, ID: "act-7f3a", Time: sampleTime.Add(-2400 * time.Millisecond), Ticket: "A-113",
		Service: "passport", Operator: "op-017", ServiceS: 312,
	}
}

// SampleActivationRecord returns a valid, closed activation record.
func SampleActivationRecord() ActivationRecord {
	return ActivationRecord{
		V: Version, Device: "kp-0001", Seq: 41, ID: "act-7f3a", Time: sampleTime.Add(-2400 * time.Millisecond),
		Ticket: "A-113", Service: "passport", Operator: "op-017", ServiceS: 312, WindowS: 20,
		Voted: true, Closed: true,
	}
}

// SampleHeartbeat returns a valid heartbeat.
func SampleHeartbeat() Heartbeat {
	return Heartbeat{
		V: Version, Device: "kp-0001", Time: sampleTime, BootID: "b-5c1e", FW: "1.4.2", UptimeS: 86400,
		RSSI: -61, TempC: 31.5, SupplyV: 5.02, Outbox: 0, ClockOffsetMS: -120,
		Presses: [5]uint64{3, 2, 9, 40, 77}, PanelOK: true, BacklightOK: true, Config: "org-3",
		TimeOffsetMS: 340, TimeSynced: true, RTTMS: 48,
	}
}

// SampleTimeBeacon returns a valid time beacon.
func SampleTimeBeacon() TimeBeacon {
	return TimeBeacon{V: Version, Time: sampleTime}
}

// SampleStatus returns a valid birth.
func SampleStatus() Status {
	return Status{V: Version, Device: "kp-0001", Time: sampleTime, Online: true, BootID: "b-5c1e", FW: "1.4.2", BDSeq: 7}
}

// SampleConfig returns a valid configuration.
func SampleConfig() Config {
	return Config{
		V: Version, Version: "org-3",
		Panel: Panel{Lang: "bg", Texts: map[string]string{
			"bg": "Оценете обслужването, моля",
			"en": "Please rate our service",
		}},
		Backlight:   Backlight{Level: 80, On: "08:00", Off: "18:00", Days: "1-5", Zone: "Europe/Sofia"},
		VoteWindowS: 20, Mode: ModeAfterService, HeartbeatS: 60, RepeatFilterMS: 3000,
	}
}

// SampleConfigApplied returns a valid confirmation.
func SampleConfigApplied() ConfigApplied {
	return ConfigApplied{V: Version, Device: "kp-0001", Time: sampleTime, Version: "org-3", OK: true}
}

// SampleCommand returns a valid self-test command.
func SampleCommand() Command {
	return Command{V: Version, ID: "cmd-19", Name: CommandSelfTest, Time: sampleTime}
}

// SampleCommandResult returns a valid self-test result.
func SampleCommandResult() CommandResult {
	return CommandResult{
		V: Version, Device: "kp-0001", ID: "cmd-19", Time: sampleTime, OK: true,
		Detail: map[string]string{"panel": "1", "light": "1", "keys": "11111"},
	}
}

// SampleFrames returns one valid frame of every serial type.
func SampleFrames() []Frame {
	info := DeviceInfo{FW: "1.4.2", Serial: "SK5-000123", Model: "SK5", Clock: sampleTime}
	return []Frame{
		info.BootFrame(),
		info.InfoFrame(),
		KeyPress{Key: 5, Seq: 1001, Clock: sampleTime}.Frame(),
		SelfTest{Pass: true, PanelOK: true, LightOK: true, KeysOK: [5]bool{true, true, true, true, true}}.Frame(),
		{Type: FrameErr, Args: []string{"light", "backlight current 0 mA"}},
		{Type: FrameArm, Args: []string{"20000"}},
		{Type: FrameDisarm},
		{Type: FrameTaken, Args: []string{"1001"}},
		{Type: FramePanel, Args: []string{"Оценете обслужването * 100%"}},
		{Type: FrameLight, Args: []string{"80"}},
		{Type: FrameInfo},
		{Type: FrameTest},
	}
}
