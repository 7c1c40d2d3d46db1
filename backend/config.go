package backend

import (
	"errors"
	"fmt"
	"github.com/semko/semko/backend/incident"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/semko/semko/backend/health/diagnostics"
	"github.com/semko/semko/backend/health/lifecycle"
	"github.com/semko/semko/broker"
)

// Config is the backend's whole configuration. Zero values take the
// defaults of DefaultConfig, so a config file names only what it changes.
type Config struct {
	// DataDir holds the durable spool and the broker's session store.
	DataDir string `yaml:"data_dir"`
	// FleetFile is the registry: organisations, sites, counters, devices.
	FleetFile string `yaml:"fleet_file"`
	// FleetDB is the fleet database the file is applied to and the API
	// edits; default <data_dir>/fleet.db.
	FleetDB string `yaml:"fleet_db"`

	MQTT   MQTTConfig   `yaml:"mqtt"`
	HTTP   HTTPConfig   `yaml:"http"`
	Influx InfluxConfig `yaml:"influx"`
	Spool  SpoolConfig  `yaml:"spool"`
	Ingest IngestConfig `yaml:"ingest"`
	Rollup RollupConfig `yaml:"rollup"`
	Alerts AlertsConfig `yaml:"alerts"` // see alerts.go
	Notify NotifyConfig `yaml:"notify"` // channels; see notify.go
	Survey SurveyConfig `yaml:"survey"` // NPS survey; see survey.go
	// Console: the web console and its accounts; see console.go.
	Console ConsoleConfig `yaml:"console"`
	// Incidents is the incident desk; see incidents.go.
	Incidents incident.Config `yaml:"incidents"`

	// Diagnostics and Lifecycle: see health.go.
	Diagnostics diagnostics.Config `yaml:"diagnostics"`
	Lifecycle   lifecycle.Config   `yaml:"lifecycle"`

	// Reports: on-demand and scheduled reports; see reports.go.
	// Aggregates: hourly and daily sums for long ranges; see aggregates.go.
	Reports    ReportsConfig    `yaml:"reports"`
	Aggregates AggregatesConfig `yaml:"aggregates"`

	// Database: SQLite files (default) or a shared PostgreSQL; see database.go.
	Database DatabaseConfig `yaml:"database"`
}

// MQTTConfig configures the embedded broker.
type MQTTConfig struct {
	Addr string `yaml:"addr"` // plain TCP listener; empty disables it
	// TLSAddr with CertFile and KeyFile enables MQTT over TLS. With
	// ClientCAFile set, devices must present a certificate signed by it.
	TLSAddr      string `yaml:"tls_addr"`
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
	// Broker limits; zero keeps the broker's defaults (see broker.Options).
	// The fleet benchmark tunes them (docs/performance.md).
	MaxInflight      uint16  `yaml:"max_inflight"`
	MaxPendingWrites int32   `yaml:"max_pending_writes"`
	PublishRate      float64 `yaml:"publish_rate"`
	PublishBurst     int     `yaml:"publish_burst"`
	// MaxConnsPerAddr bounds open connections per remote address (negative:
	// no limit); ConnectTimeout closes connections that send no CONNECT.
	MaxConnsPerAddr int           `yaml:"max_conns_per_addr"`
	ConnectTimeout  time.Duration `yaml:"connect_timeout"`
	// MaxSessionsPerAccount and MaxSubscriptions bound a non-device
	// account's sessions and a client's filters (zero: the broker's
	// defaults, 256 and 64; negative: no limit).
	MaxSessionsPerAccount int `yaml:"max_sessions_per_account"`
	MaxSubscriptions      int `yaml:"max_subscriptions"`
	// TimeBeacon is how often the backend publishes its time on
	// semko/v1/time, the edges' time reference (protocol/README.md
	// section 4); zero means timebeacon.DefaultInterval, negative none.
	TimeBeacon time.Duration `yaml:"time_beacon"`
	// Accounts are MQTT logins beside the fleet's devices: observers (a
	// technicians' phone app reading semko/v1/alerts/#) and backend-role
	// tools. Passwords are given as hashes (semko-broker hash).
	Accounts []broker.Credential `yaml:"accounts"`
	// External, when its URL is set, replaces the embedded broker: the
	// backend connects as a client to a broker running alone
	// (cmd/semko-broker, or a cluster). The settings above are then unused.
	External ExternalMQTTConfig `yaml:"external"`
	// Cluster, when its nats_urls are set, replaces both: a NATS cluster
	// is the front door (backend/cluster.go, deploy/cluster).
	Cluster ClusterMQTTConfig `yaml:"cluster"`
}

// ExternalMQTTConfig is the backend's client account on an external
// broker. The secret comes from the environment (SEMKO_MQTT_SECRET),
// never from the file.
type ExternalMQTTConfig struct {
	URL      string `yaml:"url"`       // tcp://host:1883 or ssl://host:8883
	ClientID string `yaml:"client_id"` // fixed, keeps the persistent session; default the username (or username-<suffix>)
	Username string `yaml:"username"`  // an account with role backend
	Secret   string `yaml:"-"`
	// CAFile verifies the broker's certificate (ssl://); empty uses the
	// system roots. CertFile and KeyFile present a client certificate.
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// SharedGroup subscribes as $share/<group>/..., for several replicas.
	SharedGroup string `yaml:"shared_group"`
}

// HTTPConfig configures the HTTP API.
type HTTPConfig struct {
	Addr string `yaml:"addr"`
	// Token guards everything under /api/. Health and metrics stay open so
	// probes and Prometheus need no secret.
	Token    string `yaml:"token"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// MaxConnsPerAddr bounds open connections per remote address (an IPv4
	// address or an IPv6 /64): zero means DefaultHTTPConnsPerAddr,
	// negative no limit. Behind a reverse proxy every client shares the
	// proxy's address: raise it or turn it off there.
	MaxConnsPerAddr int `yaml:"max_conns_per_addr"`
}

// DefaultHTTPConnsPerAddr is the API's per-address connection limit: far
// above what a browser, the CLI or a phone app opens, far below the
// process's file descriptors.
const DefaultHTTPConnsPerAddr = 64

// InfluxConfig says where points go. For InfluxDB 1.8 leave Org empty and
// use the database name as Bucket; Token may be "user:password" or empty.
type InfluxConfig struct {
	URL           string        `yaml:"url"`
	Token         string        `yaml:"token"`
	Org           string        `yaml:"org"`
	Bucket        string        `yaml:"bucket"`
	BatchSize     int           `yaml:"batch_size"`
	FlushInterval time.Duration `yaml:"flush_interval"`
	// MaxSeries is influxd's max-series-per-database as configured there
	// (on 2.x/3.x: the series budget of the plan); the series check warns
	// at 80% of it with the time left at the current growth. 0 or less:
	// the count is watched but never warned about. Default 25,000,000, as
	// in deploy/influxdb/influxd.conf.example.
	MaxSeries int64 `yaml:"max_series"`
	// SeriesCheckEvery is how often the series count is read; default 10m.
	SeriesCheckEvery time.Duration `yaml:"series_check_every"`
}

// SpoolConfig bounds the durable queue in front of InfluxDB. When it is
// full the backend stops acknowledging new messages (devices keep them)
// instead of dropping anything it has acknowledged.
type SpoolConfig struct {
	MaxBytes int64 `yaml:"max_bytes"`
}

// IngestConfig sets what the backend accepts.
type IngestConfig struct {
	// MaxFuture rejects timestamps further ahead than this (a broken clock).
	MaxFuture time.Duration `yaml:"max_future"`
	// MaxAge rejects timestamps older than this; it must exceed the longest
	// time an edge may stay offline with votes in its outbox.
	MaxAge time.Duration `yaml:"max_age"`
}

// DefaultConfig is what `make run` uses: everything on loopback, data under
// var/.
func DefaultConfig() Config {
	return Config{
		DataDir:   "var/backend",
		FleetFile: "var/fleet.yaml",
		MQTT:      MQTTConfig{Addr: "127.0.0.1:1883"},
		HTTP:      HTTPConfig{Addr: "127.0.0.1:8080"},
		Influx: InfluxConfig{
			URL: "http://127.0.0.1:8086", Bucket: "semko",
			BatchSize: 5000, FlushInterval: 200 * time.Millisecond,
			MaxSeries: 25_000_000, SeriesCheckEvery: 10 * time.Minute,
		},
		Spool:  SpoolConfig{MaxBytes: 1 << 30},
		Ingest: IngestConfig{MaxFuture: 5 * time.Minute, MaxAge: 35 * 24 * time.Hour},
	}
}

// LoadConfig reads a YAML config file over the defaults. Unknown keys are
// errors: a misspelt key silently ignored is a setting silently lost.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	f, err := os.Open(path)
	if err != nil {
		return cfg, fmt.Errorf("load config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("load config %s: %w", path, err)
	}
	return cfg, cfg.Validate()
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is required"))
	}
	if c.FleetFile == "" {
		errs = append(errs, errors.New("fleet_file is required"))
	}
	if c.MQTT.External.URL == "" && c.MQTT.Addr == "" && c.MQTT.TLSAddr == "" {
		errs = append(errs, errors.New("mqtt: addr, tls_addr or external.url is required"))
	}
	if c.MQTT.External.URL != "" && c.MQTT.External.Username == "" {
		errs = append(errs, errors.New("mqtt: external.url needs external.username"))
	}
	if c.MQTT.TLSAddr != "" && (c.MQTT.CertFile == "" || c.MQTT.KeyFile == "") {
		errs = append(errs, errors.New("mqtt: tls_addr needs cert_file and key_file"))
	}
	if err := c.MQTT.Cluster.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Database.validate(); err != nil {
		errs = append(errs, err)
	}
	if (c.HTTP.CertFile == "") != (c.HTTP.KeyFile == "") {
		errs = append(errs, errors.New("http: cert_file and key_file go together"))
	}
	if c.Influx.URL == "" || c.Influx.Bucket == "" {
		errs = append(errs, errors.New("influx: url and bucket are required"))
	}
	if c.Spool.MaxBytes <= 0 {
		errs = append(errs, errors.New("spool: max_bytes must be positive"))
	}
	return errors.Join(errs...)
}
