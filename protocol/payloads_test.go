package protocol

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// samePayload reports whether a and b carry the same content: time.Time
// fields compare with Equal (the zone may differ after a round trip) and a
// nil map or slice equals an empty one (omitempty drops the empty one).
func samePayload(a, b any) bool {
	return sameValue(reflect.ValueOf(a), reflect.ValueOf(b))
}

var timeType = reflect.TypeFor[time.Time]()

func sameValue(a, b reflect.Value) bool {
	if a.Type() != b.Type() {
		return false
	}
	if a.Type() == timeType {
		return a.Interface().(time.Time).Equal(b.Interface().(time.Time))
	}
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			if !sameValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Array:
		for i := range a.Len() {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map, reflect.Slice:
		if a.Len() == 0 && b.Len() == 0 {
			return true
		}
		return reflect.DeepEqual(a.Interface(), b.Interface())
	default:
		return reflect.DeepEqual(a.Interface(), b.Interface())
	}
}

// roundTrip encodes v, decodes it back as a T and checks nothing changed.
func roundTrip[T Validator](t *testing.T, v T) []byte {
	t.Helper()
	data, err := Encode(v)
	if err != nil {
		t.Fatalf("Encode(%+v): %v", v, err)
	}
	got, err := Decode[T](data)
	if err != nil {
		t.Fatalf("Decode(%s): %v", data, err)
	}
	if !samePayload(got, v) {
		t.Fatalf("round trip changed the payload\n got %+v\nwant %+v\nwire %s", got, v, data)
	}
	return data
}

func TestSamplesRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"vote", func(t *testing.T) { roundTrip(t, SampleVote()) }},
		{"activate", func(t *testing.T) { roundTrip(t, SampleActivate()) }},
		{"activation", func(t *testing.T) { roundTrip(t, SampleActivationRecord()) }},
		{"heartbeat", func(t *testing.T) { roundTrip(t, SampleHeartbeat()) }},
		{"status", func(t *testing.T) { roundTrip(t, SampleStatus()) }},
		{"config", func(t *testing.T) { roundTrip(t, SampleConfig()) }},
		{"config applied", func(t *testing.T) { roundTrip(t, SampleConfigApplied()) }},
		{"command", func(t *testing.T) { roundTrip(t, SampleCommand()) }},
		{"command result", func(t *testing.T) { roundTrip(t, SampleCommandResult()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

func TestSamplesAreFresh(t *testing.T) {
	a := SampleConfig()
	a.Panel.Texts["en"] = "changed"
	if SampleConfig().Panel.Texts["en"] == "changed" {
		t.Fatal("SampleConfig shares its map between calls")
	}
	r := SampleCommandResult()
	r.Detail["keys"] = "00000"
	if SampleCommandResult().Detail["keys"] == "00000" {
		t.Fatal("SampleCommandResult shares its map between calls")
	}
}

// TestWireNames pins the JSON names of the fields that dashboards, the
// README and third-party devices depend on.
func TestWireNames(t *testing.T) {
	tests := []struct {
		name string
		v    Validator
		keys []string
	}{
		{"vote", SampleVote(), []string{"v", "device", "seq", "ts", "score", "scale", "channel", "valid", "activation", "service", "operator", "service_s", "latency_ms"}},
		{"activate", SampleActivate(), []string{"v", "id", "ts", "ticket", "service", "operator", "service_s"}},
		{"activation", SampleActivationRecord(), []string{"v", "device", "seq", "id", "ts", "ticket", "service", "operator", "service_s", "window_s", "voted", "closed"}},
		{"heartbeat", SampleHeartbeat(), []string{"v", "device", "ts", "boot_id", "fw", "uptime_s", "rssi", "temp_c", "supply_v", "outbox", "clock_offset_ms", "presses", "errors", "panel_ok", "backlight_ok", "config", "time_offset_ms", "time_synced", "rtt_ms"}},
		{"status", SampleStatus(), []string{"v", "device", "ts", "online", "boot_id", "fw", "bdseq"}},
		{"config", SampleConfig(), []string{"v", "version", "panel", "backlight", "vote_window_s", "mode", "heartbeat_s", "repeat_filter_ms"}},
		{"config applied", SampleConfigApplied(), []string{"v", "device", "ts", "version", "ok"}},
		{"command", SampleCommand(), []string{"v", "id", "name", "ts"}},
		{"command result", SampleCommandResult(), []string{"v", "device", "id", "ts", "ok", "detail"}},
		{"time beacon", SampleTimeBeacon(), []string{"v", "ts"}},
		{"local vote", func() Vote { v := SampleVote(); v.Clock = ClockLocal; return v }(), []string{"v", "device", "seq", "ts", "score", "scale", "channel", "valid", "activation", "service", "operator", "service_s", "latency_ms", "clock"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := Encode(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			for _, k := range tt.keys {
				if _, ok := m[k]; !ok {
					t.Errorf("key %q missing in %s", k, data)
				}
				delete(m, k)
			}
			for k := range m {
				t.Errorf("unexpected key %q in %s", k, data)
			}
		})
	}
}

func TestTimestampsKeepNanoseconds(t *testing.T) {
	v := SampleVote()
	v.Time = time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("EET", 2*3600))
	data := roundTrip(t, v)
	if !bytes.Contains(data, []byte(`"ts":"2026-01-02T03:04:05.123456789+02:00"`)) {
		t.Fatalf("ts not RFC 3339 with nanoseconds: %s", data)
	}
}

func TestActivateWithoutTime(t *testing.T) {
	a := SampleActivate()
	a.Time = time.Time{}
	data := roundTrip(t, a)
	if bytes.Contains(data, []byte(`"ts"`)) {
		t.Fatalf("zero ts should be left out: %s", data)
	}
	// Senders that write the zero time explicitly mean the same.
	got, err := Decode[Activate]([]byte(`{"v":1,"id":"a-1","ts":"0001-01-01T00:00:00Z"}`))
	if err != nil || !got.Time.IsZero() {
		t.Fatalf("Decode = %+v, %v", got, err)
	}
}

// mutation breaks (or, with want nil, legally changes) one field of a sample.
type mutation[T any] struct {
	name   string
	mutate func(*T)
	want   error // nil: must stay valid
}

func checkMutations[T Validator](t *testing.T, sample func() T, muts []mutation[T]) {
	t.Helper()
	for _, m := range muts {
		t.Run(m.name, func(t *testing.T) {
			v := sample()
			m.mutate(&v)
			err := v.Validate()
			if m.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				roundTrip(t, v)
				return
			}
			if !errors.Is(err, m.want) {
				t.Fatalf("Validate() = %v, want %v", err, m.want)
			}
			if !Permanent(err) {
				t.Fatalf("Permanent(%v) = false", err)
			}
			if _, err := Encode(v); !errors.Is(err, m.want) {
				t.Fatalf("Encode() error = %v, want %v", err, m.want)
			}
			// Whatever a sender puts on the wire, Decode must refuse it.
			data, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(data, []byte(`\ufffd`)) {
				return // json.Marshal repaired bad UTF-8; TestDecodeInput covers raw bytes
			}
			if _, err := Decode[T](data); !errors.Is(err, m.want) {
				t.Fatalf("Decode(%s) error = %v, want %v", data, err, m.want)
			}
		})
	}
}

var (
	tooLongToken = strings.Repeat("x", MaxTokenLen+1)
	longestToken = strings.Repeat("x", MaxTokenLen)
)

func TestVoteValidate(t *testing.T) {
	checkMutations(t, SampleVote, []mutation[Vote]{
		{"version 0", func(v *Vote) { v.V = 0 }, ErrVersion},
		{"version 2", func(v *Vote) { v.V = 2 }, ErrVersion},
		{"device missing", func(v *Vote) { v.Device = "" }, ErrInvalid},
		{"device bad", func(v *Vote) { v.Device = "kp/1" }, ErrDeviceID},
		{"seq 0", func(v *Vote) { v.Seq = 0 }, ErrInvalid},
		{"ts missing", func(v *Vote) { v.Time = time.Time{} }, ErrInvalid},
		{"scale missing", func(v *Vote) { v.Scale = "" }, ErrInvalid},
		{"scale unknown", func(v *Vote) { v.Scale = "stars" }, ErrInvalid},
		{"csat5 score 0", func(v *Vote) { v.Score = 0 }, ErrInvalid},
		{"csat5 score 6", func(v *Vote) { v.Score = 6 }, ErrInvalid},
		{"nps11 score -1", func(v *Vote) { v.Scale, v.Score = ScaleNPS11, -1 }, ErrInvalid},
		{"nps11 score 11", func(v *Vote) { v.Scale, v.Score = ScaleNPS11, 11 }, ErrInvalid},
		{"channel missing", func(v *Vote) { v.Channel = "" }, ErrInvalid},
		{"channel with space", func(v *Vote) { v.Channel = "key pad" }, ErrInvalid},
		{"valid with reason", func(v *Vote) { v.Reason = ReasonRepeat }, ErrInvalid},
		{"invalid without reason", func(v *Vote) { v.Valid = false }, ErrInvalid},
		{"invalid unknown reason", func(v *Vote) { v.Valid, v.Reason = false, "bored" }, ErrInvalid},
		{"activation too long", func(v *Vote) { v.Activation = tooLongToken }, ErrInvalid},
		{"service with quote", func(v *Vote) { v.Service = `pass"port` }, ErrInvalid},
		{"operator with backslash", func(v *Vote) { v.Operator = `op\1` }, ErrInvalid},
		{"operator with control", func(v *Vote) { v.Operator = "op\x7f" }, ErrInvalid},
		{"operator not UTF-8", func(v *Vote) { v.Operator = "op\xff" }, ErrInvalid},
		{"service_s negative", func(v *Vote) { v.ServiceS = -1 }, ErrInvalid},
		{"latency_ms negative", func(v *Vote) { v.LatencyMS = -1 }, ErrInvalid},

		{"csat5 score 1", func(v *Vote) { v.Score = 1 }, nil},
		{"csat5 score 5", func(v *Vote) { v.Score = 5 }, nil},
		{"nps11 score 0", func(v *Vote) { v.Scale, v.Score = ScaleNPS11, 0 }, nil},
		{"nps11 score 10", func(v *Vote) { v.Scale, v.Score = ScaleNPS11, 10 }, nil},
		{"web channel", func(v *Vote) { v.Channel = ChannelWeb }, nil},
		{"no activation", func(v *Vote) {
			v.Valid, v.Reason, v.Activation, v.Service, v.Operator, v.ServiceS, v.LatencyMS = false, ReasonNoActivation, "", "", "", 0, 0
		}, nil},
		{"repeat", func(v *Vote) { v.Valid, v.Reason = false, ReasonRepeat }, nil},
		{"filtered", func(v *Vote) { v.Valid, v.Reason = false, ReasonFiltered }, nil},
		{"longest token", func(v *Vote) { v.Activation = longestToken }, nil},
		{"UTF-8 token", func(v *Vote) { v.Service = "паспорт" }, nil},
		{"max seq", func(v *Vote) { v.Seq = 1<<64 - 1 }, nil},
	})
}

func TestActivateValidate(t *testing.T) {
	checkMutations(t, SampleActivate, []mutation[Activate]{
		{"version", func(a *Activate) { a.V = 2 }, ErrVersion},
		{"id missing", func(a *Activate) { a.ID = "" }, ErrInvalid},
		{"id too long", func(a *Activate) { a.ID = tooLongToken }, ErrInvalid},
		{"ticket with space", func(a *Activate) { a.Ticket = "A 113" }, ErrInvalid},
		{"service with newline", func(a *Activate) { a.Service = "pass\nport" }, ErrInvalid},
		{"operator too long", func(a *Activate) { a.Operator = tooLongToken }, ErrInvalid},
		{"service_s negative", func(a *Activate) { a.ServiceS = -5 }, ErrInvalid},
		{"window negative", func(a *Activate) { a.WindowS = -1 }, ErrInvalid},
		{"window over an hour", func(a *Activate) { a.WindowS = 3601 }, ErrInvalid},

		{"window default", func(a *Activate) { a.WindowS = 0 }, nil},
		{"window an hour", func(a *Activate) { a.WindowS = 3600 }, nil},
		{"no time", func(a *Activate) { a.Time = time.Time{} }, nil},
		{"id only", func(a *Activate) { *a = Activate{V: Version, ID: "x"} }, nil},
	})
}

func TestActivationRecordValidate(t *testing.T) {
	checkMutations(t, SampleActivationRecord, []mutation[ActivationRecord]{
		{"version", func(a *ActivationRecord) { a.V = 0 }, ErrVersion},
		{"device", func(a *ActivationRecord) { a.Device = "kp 1" }, ErrDeviceID},
		{"seq 0", func(a *ActivationRecord) { a.Seq = 0 }, ErrInvalid},
		{"id missing", func(a *ActivationRecord) { a.ID = "" }, ErrInvalid},
		{"ts missing", func(a *ActivationRecord) { a.Time = time.Time{} }, ErrInvalid},
		{"ticket too long", func(a *ActivationRecord) { a.Ticket = tooLongToken }, ErrInvalid},
		{"service with tab", func(a *ActivationRecord) { a.Service = "a\tb" }, ErrInvalid},
		{"operator with space", func(a *ActivationRecord) { a.Operator = "op 1" }, ErrInvalid},
		{"service_s negative", func(a *ActivationRecord) { a.ServiceS = -1 }, ErrInvalid},
		{"window 0", func(a *ActivationRecord) { a.WindowS = 0 }, ErrInvalid},
		{"window over an hour", func(a *ActivationRecord) { a.WindowS = 3601 }, ErrInvalid},
		{"voted while open", func(a *ActivationRecord) { a.Closed = false }, ErrInvalid},

		{"open", func(a *ActivationRecord) { a.Voted, a.Closed = false, false }, nil},
		{"closed without vote", func(a *ActivationRecord) { a.Voted = false }, nil},
		{"window 1", func(a *ActivationRecord) { a.WindowS = 1 }, nil},
		{"window 3600", func(a *ActivationRecord) { a.WindowS = 3600 }, nil},
	})
}

func TestHeartbeatValidate(t *testing.T) {
	checkMutations(t, SampleHeartbeat, []mutation[Heartbeat]{
		{"version", func(h *Heartbeat) { h.V = -1 }, ErrVersion},
		{"device", func(h *Heartbeat) { h.Device = "" }, ErrDeviceID},
		{"ts missing", func(h *Heartbeat) { h.Time = time.Time{} }, ErrInvalid},
		{"boot_id missing", func(h *Heartbeat) { h.BootID = "" }, ErrInvalid},
		{"fw missing", func(h *Heartbeat) { h.FW = "" }, ErrInvalid},
		{"fw with space", func(h *Heartbeat) { h.FW = "1.4 beta" }, ErrInvalid},
		{"uptime negative", func(h *Heartbeat) { h.UptimeS = -1 }, ErrInvalid},
		{"outbox negative", func(h *Heartbeat) { h.Outbox = -1 }, ErrInvalid},
		{"temp -60", func(h *Heartbeat) { h.TempC = -60 }, ErrInvalid},
		{"temp 150", func(h *Heartbeat) { h.TempC = 150 }, ErrInvalid},
		{"config too long", func(h *Heartbeat) { h.Config = tooLongToken }, ErrInvalid},

		{"temp -59.5", func(h *Heartbeat) { h.TempC = -59.5 }, nil},
		{"temp 149.9", func(h *Heartbeat) { h.TempC = 149.9 }, nil},
		{"wired, no config yet", func(h *Heartbeat) { h.RSSI, h.SupplyV, h.Config = 0, 0, "" }, nil},
		{"faults", func(h *Heartbeat) { h.PanelOK, h.BacklightOK, h.Errors, h.Outbox = false, false, 12, 300 }, nil},
	})
}

func TestStatusValidate(t *testing.T) {
	checkMutations(t, SampleStatus, []mutation[Status]{
		{"version", func(s *Status) { s.V = 2 }, ErrVersion},
		{"device", func(s *Status) { s.Device = "+" }, ErrDeviceID},
		{"ts missing", func(s *Status) { s.Time = time.Time{} }, ErrInvalid},
		{"boot_id missing", func(s *Status) { s.BootID = "" }, ErrInvalid},
		{"fw with control", func(s *Status) { s.FW = "1.4\x00" }, ErrInvalid},

		{"death", func(s *Status) { s.Online = false }, nil},
		{"no fw", func(s *Status) { s.FW = "" }, nil},
		{"first connection", func(s *Status) { s.BDSeq = 0 }, nil},
	})
}

func TestConfigValidate(t *testing.T) {
	emoji := strings.Repeat("😀", MaxPanelText)
	checkMutations(t, SampleConfig, []mutation[Config]{
		{"version", func(c *Config) { c.V = 0 }, ErrVersion},
		{"config version missing", func(c *Config) { c.Version = "" }, ErrInvalid},
		{"mode missing", func(c *Config) { c.Mode = "" }, ErrInvalid},
		{"mode unknown", func(c *Config) { c.Mode = "sometimes" }, ErrInvalid},
		{"vote window 0", func(c *Config) { c.VoteWindowS = 0 }, ErrInvalid},
		{"vote window 3601", func(c *Config) { c.VoteWindowS = 3601 }, ErrInvalid},
		{"heartbeat 0", func(c *Config) { c.HeartbeatS = 0 }, ErrInvalid},
		{"heartbeat over a day", func(c *Config) { c.HeartbeatS = 86401 }, ErrInvalid},
		{"repeat filter negative", func(c *Config) { c.RepeatFilterMS = -1 }, ErrInvalid},
		{"repeat filter over an hour", func(c *Config) { c.RepeatFilterMS = 3600_001 }, ErrInvalid},
		{"backlight -1", func(c *Config) { c.Backlight.Level = -1 }, ErrInvalid},
		{"backlight 101", func(c *Config) { c.Backlight.Level = 101 }, ErrInvalid},
		{"backlight on not HH:MM", func(c *Config) { c.Backlight.On = "8am" }, ErrInvalid},
		{"backlight off 25:00", func(c *Config) { c.Backlight.Off = "25:00" }, ErrInvalid},
		{"panel language with space", func(c *Config) { c.Panel.Texts["e n"] = "x" }, ErrInvalid},
		{"panel language empty", func(c *Config) { c.Panel.Texts[""] = "x" }, ErrInvalid},
		{"panel text too long", func(c *Config) { c.Panel.Texts["en"] = strings.Repeat("я", MaxPanelText+1) }, ErrInvalid},
		{"panel text not UTF-8", func(c *Config) { c.Panel.Texts["en"] = "bad \xc3" }, ErrInvalid},
		{"panel text too big for a frame", func(c *Config) { c.Panel.Texts["en"] = emoji }, ErrInvalid},
		{"panel lang without text", func(c *Config) { c.Panel.Lang = "de" }, ErrInvalid},

		{"always on", func(c *Config) { c.Mode = ModeAlwaysOn }, nil},
		{"limits", func(c *Config) {
			c.VoteWindowS, c.HeartbeatS, c.RepeatFilterMS, c.Backlight.Level = 3600, 86400, 3600_000, 100
		}, nil},
		{"low limits", func(c *Config) {
			c.VoteWindowS, c.HeartbeatS, c.RepeatFilterMS, c.Backlight.Level = 1, 1, 0, 0
		}, nil},
		{"backlight always on", func(c *Config) { c.Backlight = Backlight{Level: 50} }, nil},
		{"no panel", func(c *Config) { c.Panel = Panel{} }, nil},
		{"longest Cyrillic text", func(c *Config) { c.Panel.Texts["bg"] = strings.Repeat("я", MaxPanelText) }, nil},
		{"longest escaped text", func(c *Config) { c.Panel.Texts["en"] = strings.Repeat("%", MaxPanelText) }, nil},
	})
}

func TestConfigAppliedValidate(t *testing.T) {
	checkMutations(t, SampleConfigApplied, []mutation[ConfigApplied]{
		{"version", func(c *ConfigApplied) { c.V = 2 }, ErrVersion},
		{"device", func(c *ConfigApplied) { c.Device = "kp#1" }, ErrDeviceID},
		{"ts missing", func(c *ConfigApplied) { c.Time = time.Time{} }, ErrInvalid},
		{"version missing", func(c *ConfigApplied) { c.Version = "" }, ErrInvalid},
		{"ok with error", func(c *ConfigApplied) { c.Error = "panel busy" }, ErrInvalid},
		{"refused without error", func(c *ConfigApplied) { c.OK = false }, ErrInvalid},

		{"refused", func(c *ConfigApplied) { c.OK, c.Error = false, "unknown zone Europe/Atlantis" }, nil},
	})
}

func TestCommandValidate(t *testing.T) {
	checkMutations(t, SampleCommand, []mutation[Command]{
		{"version", func(c *Command) { c.V = 0 }, ErrVersion},
		{"id missing", func(c *Command) { c.ID = "" }, ErrInvalid},
		{"id with space", func(c *Command) { c.ID = "cmd 1" }, ErrInvalid},
		{"name unknown", func(c *Command) { c.Name = "reboot" }, ErrInvalid},
		{"name missing", func(c *Command) { c.Name = "" }, ErrInvalid},
		{"ts missing", func(c *Command) { c.Time = time.Time{} }, ErrInvalid},

		{"info", func(c *Command) { c.Name = CommandInfo }, nil},
		{"args", func(c *Command) { c.Args = map[string]string{"verbose": "1"} }, nil},
	})
}

func TestCommandResultValidate(t *testing.T) {
	checkMutations(t, SampleCommandResult, []mutation[CommandResult]{
		{"version", func(c *CommandResult) { c.V = 3 }, ErrVersion},
		{"device", func(c *CommandResult) { c.Device = strings.Repeat("d", MaxDeviceIDLen+1) }, ErrDeviceID},
		{"id missing", func(c *CommandResult) { c.ID = "" }, ErrInvalid},
		{"id too long", func(c *CommandResult) { c.ID = tooLongToken }, ErrInvalid},
		{"ts missing", func(c *CommandResult) { c.Time = time.Time{} }, ErrInvalid},

		{"failed", func(c *CommandResult) { c.OK, c.Detail, c.Error = false, nil, "keypad does not answer" }, nil},
	})
}

// sampleJSON is the sample vote as a sender would put it on the wire.
func sampleJSON(t *testing.T) []byte {
	t.Helper()
	data, err := Encode(SampleVote())
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestDecodeInput(t *testing.T) {
	good := string(sampleJSON(t))
	body := strings.TrimSuffix(strings.TrimPrefix(good, "{"), "}")
	tests := []struct {
		name string
		data string
		want error // nil: accepted
	}{
		{"sample", good, nil},
		{"surrounding whitespace", " \t\r\n" + good + "\n \t", nil},
		{"exactly MaxPayload", good + strings.Repeat(" ", MaxPayload-len(good)), nil},
		{"unknown fields", `{"future":{"nested":[1,2,{"x":null}]},` + body + `,"zz":"ignored"}`, nil},
		{"oversized", good + strings.Repeat(" ", MaxPayload-len(good)+1), ErrTooLarge},
		{"oversized garbage", strings.Repeat("{", MaxPayload+1), ErrTooLarge},
		{"empty", "", ErrInvalid},
		{"blank", "  \n", ErrInvalid},
		{"null", "null", ErrInvalid},
		{"array", "[" + good + "]", ErrInvalid},
		{"string", `"vote"`, ErrInvalid},
		{"number", "42", ErrInvalid},
		{"bool", "true", ErrInvalid},
		{"truncated", good[:len(good)-1], ErrInvalid},
		{"second object", good + good, ErrInvalid},
		{"trailing garbage", good + "x", ErrInvalid},
		{"trailing brace", good + "}", ErrInvalid},
		{"trailing bracket", good + "]", ErrInvalid},
		{"trailing comma", good + ",", ErrInvalid},
		{"trailing null", good + " null", ErrInvalid},
		{"trailing NUL", good + "\x00", ErrInvalid},
		{"invalid UTF-8", strings.Replace(good, "passport", "pass\xffport", 1), ErrInvalid},
		{"wrong type", strings.Replace(good, `"seq":42`, `"seq":"42"`, 1), ErrInvalid},
		{"negative seq", strings.Replace(good, `"seq":42`, `"seq":-42`, 1), ErrInvalid},
		{"float score", strings.Replace(good, `"score":4`, `"score":4.5`, 1), ErrInvalid},
		{"ts not RFC 3339", strings.Replace(good, `"ts":"2026-11-24T09:30:15.25Z"`, `"ts":"24.11.2026 09:30"`, 1), ErrInvalid},
		{"ts unix", strings.Replace(good, `"ts":"2026-11-24T09:30:15.25Z"`, `"ts":1795512615`, 1), ErrInvalid},
		{"v missing", strings.Replace(good, `"v":1,`, ``, 1), ErrVersion},
		{"v 2", strings.Replace(good, `"v":1,`, `"v":2,`, 1), ErrVersion},
		{"v string", strings.Replace(good, `"v":1,`, `"v":"1",`, 1), ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.data == good && tt.name != "sample" {
				t.Fatal("the mutation did not apply: fix the test")
			}
			got, err := Decode[Vote]([]byte(tt.data))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if !samePayload(got, SampleVote()) {
					t.Fatalf("Decode = %+v, want the sample", got)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode error = %v, want %v", err, tt.want)
			}
			if !Permanent(err) {
				t.Fatalf("Permanent(%v) = false", err)
			}
		})
	}
}

func TestScale(t *testing.T) {
	tests := []struct {
		scale      Scale
		lo, hi     int
		satisfied  []int
		negative   []int
		unassigned []int // neither satisfied nor negative
	}{
		{ScaleCSAT5, 1, 5, []int{4, 5}, []int{1, 2}, []int{3}},
		{ScaleNPS11, 0, 10, []int{9, 10}, []int{0, 1, 2, 3, 4, 5, 6}, []int{7, 8}},
	}
	for _, tt := range tests {
		t.Run(string(tt.scale), func(t *testing.T) {
			lo, hi, ok := tt.scale.Range()
			if !ok || lo != tt.lo || hi != tt.hi {
				t.Fatalf("Range() = %d, %d, %v; want %d, %d, true", lo, hi, ok, tt.lo, tt.hi)
			}
			want := map[int]string{}
			for _, s := range tt.satisfied {
				want[s] = "satisfied"
			}
			for _, s := range tt.negative {
				want[s] = "negative"
			}
			for _, s := range tt.unassigned {
				want[s] = "neutral"
			}
			if len(want) != hi-lo+1 {
				t.Fatalf("the table covers %d scores, the scale has %d", len(want), hi-lo+1)
			}
			for score := lo; score <= hi; score++ {
				got := "neutral"
				switch {
				case tt.scale.Satisfied(score) && tt.scale.Negative(score):
					got = "both"
				case tt.scale.Satisfied(score):
					got = "satisfied"
				case tt.scale.Negative(score):
					got = "negative"
				}
				if got != want[score] {
					t.Errorf("score %d is %s, want %s", score, got, want[score])
				}
				v := SampleVote()
				v.Scale, v.Score = tt.scale, score
				if v.Satisfied() != tt.scale.Satisfied(score) || v.Negative() != tt.scale.Negative(score) {
					t.Errorf("Vote methods disagree with the scale at score %d", score)
				}
				if err := v.Validate(); err != nil {
					t.Errorf("score %d: %v", score, err)
				}
			}
		})
	}
	if _, _, ok := Scale("stars").Range(); ok {
		t.Error("unknown scale has a range")
	}
}

func TestCheckTime(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	const future, age = 5 * time.Minute, 7 * 24 * time.Hour
	tests := []struct {
		name string
		ts   time.Time
		ok   bool
	}{
		{"now", now, true},
		{"at the future limit", now.Add(future), true},
		{"past the future limit", now.Add(future + time.Nanosecond), false},
		{"at the age limit", now.Add(-age), true},
		{"past the age limit", now.Add(-age - time.Nanosecond), false},
		{"other zone, same instant", now.In(time.FixedZone("X", -5*3600)).Add(future), true},
		{"zero", time.Time{}, false},
		{"far future", now.AddDate(30, 0, 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckTime(tt.ts, now, future, age)
			if tt.ok && err != nil {
				t.Fatalf("CheckTime: %v", err)
			}
			if !tt.ok && (!errors.Is(err, ErrClock) || !Permanent(err)) {
				t.Fatalf("CheckTime = %v, want a permanent ErrClock", err)
			}
		})
	}
}

func TestPermanent(t *testing.T) {
	_, topicErr := ParseTopic("semko/v1/devices/kp-1/nope")
	_, decodeErr := Decode[Heartbeat]([]byte("{"))
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"invalid", fmt.Errorf("ingest: %w", ErrInvalid), true},
		{"version", fmt.Errorf("ingest: %w", ErrVersion), true},
		{"too large", ErrTooLarge, true},
		{"clock", ErrClock, true},
		{"validate", Vote{V: Version}.Validate(), true},
		{"decode", decodeErr, true},
		{"topic", topicErr, true},
		{"device id", ValidateDeviceID(""), true},
		{"not semko", ErrNotSemko, true},
		{"joined", errors.Join(io.ErrUnexpectedEOF, ErrInvalid), true},
		{"eof", io.EOF, false},
		{"deadline", context.DeadlineExceeded, false},
		{"canceled", fmt.Errorf("publish: %w", context.Canceled), false},
		{"other", errors.New("connection refused"), false},
		{"serial", ErrChecksum, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Permanent(tt.err); got != tt.want {
				t.Fatalf("Permanent(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
