// Command semko-edge is the agent beside a keypad: it reads the keypad's
// serial line, keeps votes in a durable outbox and publishes them to the
// broker.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/semko/semko/edge"
	"github.com/semko/semko/edge/keypad"
	"github.com/semko/semko/internal/cli"
	"github.com/semko/semko/internal/tlsconf"
	"github.com/semko/semko/protocol"
)

// fileConfig is the agent's YAML config file. Flags override it.
type fileConfig struct {
	Device     string `yaml:"device"`
	SecretFile string `yaml:"secret_file"` // file holding the MQTT secret
	Broker     string `yaml:"broker"`
	DataDir    string `yaml:"data_dir"`
	HTTPAddr   string `yaml:"http_addr"`
	Serial     string `yaml:"serial"` // serial device, e.g. /dev/ttyUSB0
	Baud       int    `yaml:"baud"`
	KeypadTCP  string `yaml:"keypad_tcp"` // a keypad (or simulator) exposed over TCP instead
	// TLS for ssl:// brokers: CAFile is the private CA that signed the
	// broker's certificate (empty: the system roots); CertFile and KeyFile
	// are the device's own certificate, for brokers that require mutual TLS.
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Reconnect backoff (edge.Config); zero keeps the agent's defaults.
	// A large fleet behind one broker wants a ReconnectMin of about its
	// size divided by the broker's set-up rate (edge/README.md).
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
}

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fc := fileConfig{Broker: "tcp://127.0.0.1:1883", DataDir: "var/edge", HTTPAddr: "127.0.0.1:8181", Baud: 9600}
	fs := flag.NewFlagSet("semko-edge", flag.ContinueOnError)
	configFile := fs.String("config", "", "YAML config file (optional; flags override it)")
	flags := cli.NewOverrides(fs)
	flags.String(&fc.Device, "device", "device id (MQTT client id and username)")
	flags.String(&fc.SecretFile, "secret-file", "file holding the device's MQTT secret (or env SEMKO_DEVICE_SECRET)")
	flags.String(&fc.Broker, "broker", "MQTT broker URL; a cluster's nodes comma-separated")
	flags.String(&fc.DataDir, "data", "outbox and state directory")
	flags.String(&fc.HTTPAddr, "http", "local activation endpoint; empty disables it")
	flags.String(&fc.Serial, "serial", "keypad serial device, e.g. /dev/ttyUSB0")
	flags.Int(&fc.Baud, "baud", "serial speed")
	flags.String(&fc.KeypadTCP, "keypad-tcp", "keypad reachable over TCP (host:port) instead of a serial port")
	flags.String(&fc.CAFile, "ca-file", "CA certificate (PEM) that signed the broker's, for ssl:// brokers")
	flags.String(&fc.CertFile, "cert-file", "client certificate (PEM), for mutual TLS")
	flags.String(&fc.KeyFile, "key-file", "client private key (PEM), for mutual TLS")
	flags.Duration(&fc.ReconnectMin, "reconnect-min", "first reconnect wait, full jitter (0: 1s)")
	flags.Duration(&fc.ReconnectMax, "reconnect-max", "cap of the doubling reconnect wait (0: 2m)")
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
		if err := loadFile(*configFile, &fc); err != nil {
			log.Error("config", "err", err)
			return 2
		}
	}
	flags.Apply()
	secret, err := readSecret(fc.SecretFile)
	if err != nil {
		log.Error("secret", "err", err)
		return 2
	}
	tlsConfig, err := clientTLS(fc.CAFile, fc.CertFile, fc.KeyFile)
	if err != nil {
		log.Error("tls", "err", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	line, err := openKeypad(ctx, fc)
	if err != nil {
		log.Error("keypad", "err", err)
		return 1
	}
	agent, err := edge.New(edge.Config{
		Device: fc.Device, Secret: secret, Broker: fc.Broker, TLS: tlsConfig, DataDir: fc.DataDir, HTTPAddr: fc.HTTPAddr,
		Defaults: defaultDeviceConfig(), ReconnectMin: fc.ReconnectMin, ReconnectMax: fc.ReconnectMax,
		Logger: log.With("device", fc.Device),
	}, line)
	if err != nil {
		line.Close()
		log.Error("edge", "err", err)
		return 2
	}
	if err := agent.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("run", "err", err)
		return 1
	}
	return 0
}

// defaultDeviceConfig applies until the backend's retained config arrives.
func defaultDeviceConfig() protocol.Config {
	return protocol.Config{
		V: protocol.Version, Version: "edge-default",
		Panel:       protocol.Panel{Lang: "en", Texts: map[string]string{"en": "Please rate our service"}},
		Backlight:   protocol.Backlight{Level: 80},
		VoteWindowS: 20, Mode: protocol.ModeAfterService, HeartbeatS: 60, RepeatFilterMS: 3000,
	}
}

func loadFile(path string, fc *fileConfig) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(fc); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

// readSecret prefers the environment, so the secret never shows in ps.
func readSecret(path string) (string, error) {
	if s := os.Getenv("SEMKO_DEVICE_SECRET"); s != "" {
		return s, nil
	}
	if path == "" {
		return "", errors.New("no secret: set SEMKO_DEVICE_SECRET or -secret-file")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func openKeypad(ctx context.Context, fc fileConfig) (io.ReadWriteCloser, error) {
	switch {
	case fc.Serial != "" && fc.KeypadTCP != "":
		return nil, errors.New("-serial and -keypad-tcp exclude each other")
	case fc.Serial != "":
		return keypad.OpenSerial(fc.Serial, fc.Baud)
	case fc.KeypadTCP != "":
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return keypad.DialTCP(dctx, fc.KeypadTCP)
	}
	return nil, errors.New("no keypad: give -serial or -keypad-tcp")
}

// clientTLS builds the TLS config for ssl:// brokers; nil when no file is
// given (the system roots, no client certificate).
func clientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("-cert-file and -key-file go together")
	}
	return tlsconf.Client(caFile, certFile, keyFile)
}
