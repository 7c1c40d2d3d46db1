// Command semko-broker runs Semko's MQTT broker on its own, for a backend
// configured with mqtt.external (see broker/README.md, "Running the broker
// alone"). It relays: with no Intake, a PUBACK means the broker has the
// message, and the backend's persistent session keeps what the backend has
// not acknowledged, on disk under -data.
//
//	semko-broker -config broker.yaml
//	semko-broker -mqtt :1883 -data var/broker -credentials accounts.yaml -fleet fleet.yaml
//	semko-broker hash < secret.txt     # the hash to put in accounts.yaml
//
// SIGHUP rereads the credentials file and the fleet file; on error the
// accounts in force stay.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/semko/semko/broker"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/internal/cli"
	"github.com/semko/semko/internal/tlsconf"
)

// config is the YAML file; flags given on the command line override it.
type config struct {
	Addr            string `yaml:"addr"`     // plain MQTT; empty disables it
	TLSAddr         string `yaml:"tls_addr"` // MQTT over TLS, with cert_file and key_file
	CertFile        string `yaml:"cert_file"`
	KeyFile         string `yaml:"key_file"`
	ClientCAFile    string `yaml:"client_ca_file"` // mutual TLS: devices need a certificate it signed
	DataDir         string `yaml:"data_dir"`       // sessions, inflight and retained messages (pebble)
	CredentialsFile string `yaml:"credentials_file"`
	FleetFile       string `yaml:"fleet_file"` // device accounts from the fleet file
	Limits          limits `yaml:"limits"`
}

// limits map onto broker.Options; zero keeps the broker's defaults except
// MaxInflight, see defaultConfig.
type limits struct {
	MaxInflight      uint16        `yaml:"max_inflight"`
	MaxPendingWrites int32         `yaml:"max_pending_writes"`
	MaxPacketSize    uint32        `yaml:"max_packet_size"`
	PublishRate      float64       `yaml:"publish_rate"`
	PublishBurst     int           `yaml:"publish_burst"`
	MaxConnsPerAddr  int           `yaml:"max_conns_per_addr"`
	SessionExpiry    time.Duration `yaml:"session_expiry"`
	// Per non-device account, and per client (see broker.Options).
	MaxSessionsPerAccount int `yaml:"max_sessions_per_account"`
	MaxSubscriptions      int `yaml:"max_subscriptions"`
}

func defaultConfig() config {
	return config{
		Addr:    "127.0.0.1:1883",
		DataDir: "var/broker",
		// The backend's session queues everything the backend has not
		// acknowledged; past MaxInflight mochi drops, so relay mode wants
		// the most the protocol allows (packet ids are 16 bits).
		Limits: limits{MaxInflight: 65535},
	}
}

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout)) }

func run(args []string, stdin io.Reader, stdout io.Writer) int {
	if len(args) > 0 && args[0] == "hash" {
		return hash(stdin, stdout)
	}
	cfg := defaultConfig()
	fs := flag.NewFlagSet("semko-broker", flag.ContinueOnError)
	configFile := fs.String("config", "", "YAML config file (optional; flags override it)")
	flags := cli.NewOverrides(fs)
	flags.String(&cfg.Addr, "mqtt", "plain MQTT listen address; empty disables it")
	flags.String(&cfg.TLSAddr, "mqtt-tls", "MQTT over TLS listen address, e.g. :8883")
	flags.String(&cfg.CertFile, "cert-file", "TLS certificate (PEM)")
	flags.String(&cfg.KeyFile, "key-file", "TLS private key (PEM)")
	flags.String(&cfg.ClientCAFile, "client-ca-file", "CA for client certificates: enables mutual TLS")
	flags.String(&cfg.DataDir, "data", "persistence directory; empty keeps sessions in memory only")
	flags.String(&cfg.CredentialsFile, "credentials", "accounts file: a YAML list of {username, hash, role}")
	flags.String(&cfg.FleetFile, "fleet", "fleet file: one device account per device")
	logger := cli.LogFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := logger()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if *configFile != "" {
		if err := loadConfig(*configFile, &cfg); err != nil {
			log.Error("config", "err", err)
			return 2
		}
	}
	flags.Apply()

	accounts, err := loadAccounts(cfg.CredentialsFile, cfg.FleetFile)
	if err != nil {
		log.Error("accounts", "err", err)
		return 2
	}
	creds, err := broker.NewCredentials(accounts)
	if err != nil {
		log.Error("accounts", "err", err)
		return 2
	}
	opts, err := brokerOptions(cfg, creds, log)
	if err != nil {
		log.Error("config", "err", err)
		return 2
	}
	b, err := broker.New(opts)
	if err != nil {
		log.Error("broker", "err", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Before Start: once the broker listens, a SIGHUP must reload, not
	// kill (its default action).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := b.Start(ctx); err != nil {
		log.Error("start", "err", err)
		return 1
	}
	log.Info("semko-broker up", "mqtt", b.Addr(), "mqtt_tls", b.TLSAddr(), "accounts", creds.Len(), "data", cfg.DataDir)

	for {
		select {
		case <-ctx.Done():
			log.Info("semko-broker stopping")
			if err := b.Close(); err != nil {
				log.Error("close", "err", err)
				return 1
			}
			return 0
		case <-hup:
			if err := reload(creds, cfg); err != nil {
				log.Error("reload: accounts unchanged", "err", err)
				continue
			}
			log.Info("accounts reloaded", "accounts", creds.Len())
		}
	}
}

func reload(creds *broker.Credentials, cfg config) error {
	accounts, err := loadAccounts(cfg.CredentialsFile, cfg.FleetFile)
	if err != nil {
		return err
	}
	return creds.Replace(accounts)
}

func brokerOptions(cfg config, creds *broker.Credentials, log *slog.Logger) (broker.Options, error) {
	opts := broker.Options{
		TCPAddr: cfg.Addr, DataDir: cfg.DataDir, Credentials: creds, Logger: log,
		MaxInflight: cfg.Limits.MaxInflight, MaxPendingWrites: cfg.Limits.MaxPendingWrites,
		MaxPacketSize: cfg.Limits.MaxPacketSize, PublishRate: cfg.Limits.PublishRate,
		PublishBurst: cfg.Limits.PublishBurst, MaxConnsPerAddr: cfg.Limits.MaxConnsPerAddr,
		SessionExpiry: cfg.Limits.SessionExpiry, MaxSessionsPerAccount: cfg.Limits.MaxSessionsPerAccount,
		MaxSubscriptions: cfg.Limits.MaxSubscriptions,
	}
	if cfg.TLSAddr == "" {
		return opts, nil
	}
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return opts, errors.New("tls_addr needs cert_file and key_file")
	}
	tc, err := tlsconf.Server(cfg.CertFile, cfg.KeyFile, cfg.ClientCAFile)
	if err != nil {
		return opts, err
	}
	opts.TLSAddr, opts.TLSConfig = cfg.TLSAddr, tc
	return opts, nil
}

func loadConfig(path string, cfg *config) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true) // a misspelt key is a setting silently lost
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

// account is one entry of the credentials file.
type account struct {
	Username string      `yaml:"username"`
	Hash     string      `yaml:"hash"`
	Role     broker.Role `yaml:"role"`
	// Orgs and Sites scope an observer (see broker.Credential).
	Orgs  []string `yaml:"orgs"`
	Sites []string `yaml:"sites"`
}

// loadAccounts joins the credentials file and the fleet's devices. An
// account in the credentials file wins over a fleet device of the same
// name, so a device can be locked out by giving it another hash there.
func loadAccounts(credFile, fleetFile string) ([]broker.Credential, error) {
	if credFile == "" && fleetFile == "" {
		return nil, errors.New("no accounts: give a credentials file, a fleet file or both")
	}
	var list []broker.Credential
	named := map[string]bool{}
	if credFile != "" {
		b, err := os.ReadFile(credFile)
		if err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
		var accounts []account
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&accounts); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("credentials %s: %w", credFile, err)
		}
		for _, a := range accounts {
			list = append(list, broker.Credential{Username: a.Username, Hash: a.Hash, Role: a.Role, Orgs: a.Orgs, Sites: a.Sites})
			named[a.Username] = true
		}
	}
	if fleetFile != "" {
		st, err := registry.Open(fleetFile)
		if err != nil {
			return nil, fmt.Errorf("fleet: %w", err)
		}
		for _, c := range st.Current().Credentials() {
			if !named[c.Device] {
				list = append(list, broker.Credential{Username: c.Device, Hash: c.Hash, Role: broker.RoleDevice})
			}
		}
	}
	return list, nil
}

// hash reads one secret (the first line of stdin) and prints
// broker.HashSecret of it: a salted sha256, right for random tokens of at
// least 128 bits. For a password a person chose, store a bcrypt hash
// instead (htpasswd -nbB or any bcrypt tool); the broker accepts both.
func hash(stdin io.Reader, stdout io.Writer) int {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(os.Stderr, "read secret:", err)
		return 1
	}
	secret := strings.TrimRight(line, "\r\n")
	if secret == "" {
		fmt.Fprintln(os.Stderr, "no secret on stdin")
		return 2
	}
	h, err := broker.HashSecret(secret)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hash:", err)
		return 1
	}
	fmt.Fprintln(stdout, h)
	return 0
}
