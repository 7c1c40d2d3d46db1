package cli

import (
	"flag"
	"time"
)

// Overrides binds flags to the fields of a config that a YAML file may set
// too. Each flag's default is the field's value when it is defined; after
// the file is loaded, Apply sets the fields of the flags given on the
// command line, so that they win over the file and the others keep the
// file's value.
type Overrides struct {
	fs    *flag.FlagSet
	apply map[string]func()
}

// NewOverrides returns Overrides that define their flags on fs.
func NewOverrides(fs *flag.FlagSet) *Overrides {
	return &Overrides{fs: fs, apply: map[string]func(){}}
}

// String defines the string flag name for *field.
func (o *Overrides) String(field *string, name, usage string) {
	v := o.fs.String(name, *field, usage)
	o.apply[name] = func() { *field = *v }
}

// Int defines the int flag name for *field.
func (o *Overrides) Int(field *int, name, usage string) {
	v := o.fs.Int(name, *field, usage)
	o.apply[name] = func() { *field = *v }
}

// Duration defines the duration flag name for *field.
func (o *Overrides) Duration(field *time.Duration, name, usage string) {
	v := o.fs.Duration(name, *field, usage)
	o.apply[name] = func() { *field = *v }
}

// Apply sets the field of every flag given on the command line. Call it
// after parsing the flags and loading the file.
func (o *Overrides) Apply() {
	o.fs.Visit(func(f *flag.Flag) {
		if set, ok := o.apply[f.Name]; ok {
			set()
		}
	})
}
