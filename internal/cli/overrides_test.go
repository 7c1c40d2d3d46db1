package cli

import (
	"flag"
	"io"
	"testing"
)

func TestOverrides(t *testing.T) {
	type config struct {
		Addr, Dir string
		Baud      int
	}
	cfg := config{Addr: "127.0.0.1:1883", Dir: "var/x", Baud: 9600}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := NewOverrides(fs)
	o.String(&cfg.Addr, "addr", "")
	o.String(&cfg.Dir, "dir", "")
	o.Int(&cfg.Baud, "baud", "")
	other := fs.String("other", "", "a flag Overrides does not know")
	if got := fs.Lookup("addr").DefValue; got != "127.0.0.1:1883" {
		t.Errorf("-addr default %q, want the field's value", got)
	}
	if err := fs.Parse([]string{"-addr", ":1", "-baud", "19200", "-other", "x"}); err != nil {
		t.Fatal(err)
	}
	// The file sets all three; the flags given win, the other keeps the file's value.
	cfg = config{Addr: "file:1883", Dir: "file/dir", Baud: 4800}
	o.Apply()
	if want := (config{Addr: ":1", Dir: "file/dir", Baud: 19200}); cfg != want || *other != "x" {
		t.Errorf("cfg = %+v, want %+v", cfg, want)
	}
}
