package cli

import (
	"flag"
	"io"
	"testing"
	"time"
)

func TestOverrides(t *testing.T) {
	type config struct {
		Addr, Dir string
		Baud      int
		Wait      time.Duration
	}
	cfg := config{Addr: "127.0.0.1:1883", Dir: "var/x", Baud: 9600, Wait: time.Second}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := NewOverrides(fs)
	o.String(&cfg.Addr, "addr", "")
	o.String(&cfg.Dir, "dir", "")
	o.Int(&cfg.Baud, "baud", "")
	o.Duration(&cfg.Wait, "wait", "")
	other := fs.String("other", "", "a flag Overrides does not know")
	if got := fs.Lookup("addr").DefValue; got != "127.0.0.1:1883" {
		t.Errorf("-addr default %q, want the field's value", got)
	}
	if err := fs.Parse([]string{"-addr", ":1", "-baud", "19200", "-wait", "5s", "-other", "x"}); err != nil {
		t.Fatal(err)
	}
	// The file sets all four; the flags given win, the other keeps the file's value.
	cfg = config{Addr: "file:1883", Dir: "file/dir", Baud: 4800, Wait: time.Minute}
	o.Apply()
	if want := (config{Addr: ":1", Dir: "file/dir", Baud: 19200, Wait: 5 * time.Second}); cfg != want || *other != "x" {
		t.Errorf("cfg = %+v, want %+v", cfg, want)
	}
}
