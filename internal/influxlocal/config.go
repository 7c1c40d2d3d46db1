package influxlocal

import (
	"fmt"
	"os"
	"path/filepath"
)

// configTemplate is the influxd configuration the harness writes. Settings
// left out keep influxd's defaults. deploy/influxdb/influxd.conf.example
// documents the same file for people running influxd by hand: keep them in
// step.
const configTemplate = `# Written by internal/influxlocal; rewritten on every start.
reporting-disabled = true
# The RPC port used by backup/restore. Its default (8088) would collide
# between parallel tests, so it gets a free loopback port too.
bind-address = %q

[meta]
  dir = %q
  logging-enabled = false

[data]
  dir = %q
  wal-dir = %q
  # fsync every write before answering: a killed influxd loses nothing it acknowledged.
  wal-fsync-delay = "0s"
  # TSI keeps the series index on disk (production's choice, see
  # deploy/influxdb/influxd.conf.example); tests of the series limit ask for
  # inmem, the only 1.8 index that enforces max-series-per-database.
  index-version = %q
  max-series-per-database = %d
  max-values-per-tag = %d
  query-log-enabled = false

[coordinator]
  log-queries-after = "0s"

[monitor]
  # Do not write the _internal database: it costs disk and CPU for nothing here.
  # /debug/vars still answers (the backend's series check reads it).
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  # Semko computes roll-ups in the backend's scheduler, portable to 2.x/3.x.
  enabled = false
  log-enabled = false

[http]
  enabled = true
  bind-address = %q
  auth-enabled = false
  log-enabled = false
  flux-enabled = false
  pprof-enabled = false

[logging]
  format = "logfmt"
  level = "info"
  suppress-logo = true
`

// Defaults of the [data] limits; see deploy/influxdb/influxd.conf.example
// for how DefaultMaxSeries is sized.
const (
	DefaultIndexVersion    = "tsi1"
	DefaultMaxSeries       = 25_000_000
	DefaultMaxValuesPerTag = 0 // no limit: an org, site or operator list is the fleet's
)

// limits are the [data] settings a Server is started with.
type limits struct {
	index           string
	maxSeries       int
	maxValuesPerTag int
}

// writeConfig writes the configuration for a server rooted at dir and returns
// its path.
func writeConfig(dir, httpAddr, bindAddr string, lim limits) (string, error) {
	if lim.index == "" {
		lim.index = DefaultIndexVersion
	}
	conf := fmt.Sprintf(configTemplate, bindAddr,
		filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"),
		lim.index, lim.maxSeries, lim.maxValuesPerTag,
		httpAddr)
	path := filepath.Join(dir, "influxd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return "", fmt.Errorf("write config: %w", err)
	}
	return path, nil
}
