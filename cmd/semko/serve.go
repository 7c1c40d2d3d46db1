package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/semko/semko/backend"
	"github.com/semko/semko/internal/cli"
)

// serve runs the backend until SIGINT or SIGTERM; SIGHUP reloads the fleet
// file.
func serve(args []string) int {
	fs := flag.NewFlagSet("semko serve", flag.ContinueOnError)
	configFile := fs.String("config", "", "YAML config file (optional; flags override it)")
	def := backend.DefaultConfig()
	dataDir := fs.String("data", def.DataDir, "data directory (spool, broker sessions)")
	fleet := fs.String("fleet", def.FleetFile, "fleet file: organisations, sites, counters, devices")
	mqttAddr := fs.String("mqtt", def.MQTT.Addr, "MQTT listen address")
	httpAddr := fs.String("http", def.HTTP.Addr, "HTTP API listen address")
	influxURL := fs.String("influx-url", def.Influx.URL, "InfluxDB URL")
	influxBucket := fs.String("influx-bucket", def.Influx.Bucket, "InfluxDB bucket (1.8: database)")
	influxOrg := fs.String("influx-org", def.Influx.Org, "InfluxDB organisation (empty for 1.8)")
	logger := cli.LogFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := logger()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}

	cfg := def
	if *configFile != "" {
		if cfg, err = backend.LoadConfig(*configFile); err != nil {
			log.Error("config", "err", err)
			return 2
		}
	}
	// Flags given on the command line win over the file.
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data":
			cfg.DataDir = *dataDir
		case "fleet":
			cfg.FleetFile = *fleet
		case "mqtt":
			cfg.MQTT.Addr = *mqttAddr
		case "http":
			cfg.HTTP.Addr = *httpAddr
		case "influx-url":
			cfg.Influx.URL = *influxURL
		case "influx-bucket":
			cfg.Influx.Bucket = *influxBucket
		case "influx-org":
			cfg.Influx.Org = *influxOrg
		}
	})
	// Secrets come from the environment, never from flags (visible in ps).
	if v := os.Getenv("SEMKO_INFLUX_TOKEN"); v != "" {
		cfg.Influx.Token = v
	}
	if v := os.Getenv("SEMKO_API_TOKEN"); v != "" {
		cfg.HTTP.Token = v
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app, err := backend.New(cfg, log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := app.ReloadRegistry(); err != nil {
					log.Error("reload fleet file: keeping the previous one", "err", err)
				} else {
					log.Info("fleet file reloaded", "file", cfg.FleetFile)
				}
			}
		}
	}()
	if err := app.Run(ctx); err != nil {
		log.Error("run", "err", err)
		return 1
	}
	return 0
}
