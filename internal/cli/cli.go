// Package cli holds what Semko's thin mains share: logger set-up from flags.
package cli

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// LogFlags registers -log-level and -log-format on fs and returns a function
// that builds the logger once flags are parsed.
func LogFlags(fs *flag.FlagSet) func() (*slog.Logger, error) {
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	format := fs.String("log-format", "text", "log format: text or json")
	return func() (*slog.Logger, error) {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(*level)); err != nil {
			return nil, fmt.Errorf("-log-level: %w", err)
		}
		opts := &slog.HandlerOptions{Level: lv}
		switch strings.ToLower(*format) {
		case "text":
			return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
		case "json":
			return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
		}
		return nil, fmt.Errorf("-log-format: %q is not text or json", *format)
	}
}
