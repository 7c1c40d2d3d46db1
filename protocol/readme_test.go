package protocol

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// readmeExamples are the examples README.md shows, generated from the
// samples so that the page cannot drift from the code.
func readmeExamples(t *testing.T) []struct{ name, block string } {
	t.Helper()
	// The will is fixed at CONNECT, so it carries the birth's ts and bdseq.
	death := SampleStatus()
	death.Online = false
	// One outbox sequence for all kinds: open 41, vote 42, repeat 43, close 44.
	open := SampleActivationRecord()
	open.Voted, open.Closed = false, false
	closed := SampleActivationRecord()
	closed.Seq = 44
	repeat := SampleVote()
	repeat.Seq, repeat.Time, repeat.Score = 43, repeat.Time.Add(1500*time.Millisecond), 1
	repeat.Valid, repeat.Reason, repeat.LatencyMS = false, ReasonRepeat, 3900

	payloads := []struct {
		name string
		v    Validator
	}{
		{"vote", SampleVote()},
		{"vote-repeat", repeat},
		{"activate", SampleActivate()},
		{"activation-open", open},
		{"activation-closed", closed},
		{"heartbeat", SampleHeartbeat()},
		{"status-birth", SampleStatus()},
		{"status-death", death},
		{"config", SampleConfig()},
		{"config-applied", SampleConfigApplied()},
		{"command", SampleCommand()},
		{"command-result", SampleCommandResult()},
		{"time-beacon", SampleTimeBeacon()},
	}
	var out []struct{ name, block string }
	for _, p := range payloads {
		if err := p.v.Validate(); err != nil {
			t.Fatalf("example %s: %v", p.name, err)
		}
		data, err := json.MarshalIndent(p.v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, struct{ name, block string }{p.name, "```json\n" + string(data) + "\n```\n"})
	}

	info := DeviceInfo{FW: "1.4.2", Serial: "SK5-000123", Model: "SK5"}
	conversation := []struct {
		dir string
		f   Frame
	}{
		{"keypad", info.BootFrame()},
		{"host  ", Frame{Type: FramePanel, Args: []string{"Оценете обслужването * 100%"}}},
		{"host  ", Frame{Type: FrameLight, Args: []string{"80"}}},
		{"host  ", Frame{Type: FrameArm, Args: []string{"20000"}}},
		{"keypad", KeyPress{Key: 4, Seq: 1001, Clock: sampleTime}.Frame()},
		{"host  ", Frame{Type: FrameTaken, Args: []string{"1001"}}},
		{"host  ", Frame{Type: FrameDisarm}},
		{"host  ", Frame{Type: FrameTest}},
		{"keypad", SelfTest{Pass: false, PanelOK: true, LightOK: false, KeysOK: [5]bool{true, true, true, true, true}}.Frame()},
		{"keypad", Frame{Type: FrameErr, Args: []string{"light", "backlight current 0 mA"}}},
	}
	var b strings.Builder
	b.WriteString("```\n")
	for _, c := range conversation {
		b.WriteString(c.dir + "  " + c.f.String() + "\n")
	}
	b.WriteString("```\n")
	out = append(out, struct{ name, block string }{"serial-conversation", b.String()})
	return out
}

func TestREADMEExamples(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range readmeExamples(t) {
		if !strings.Contains(string(readme), ex.block) {
			t.Errorf("README.md lacks the current %s example; paste this:\n%s", ex.name, ex.block)
		}
	}
}
