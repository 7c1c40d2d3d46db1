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
	cfg := backend.DefaultConfig()
	flags := cli.NewOverrides(fs)
	flags.String(&cfg.DataDir, "data", "data directory (spool, broker sessions)")
	flags.String(&cfg.FleetFile, "fleet", "fleet file: organisations, sites, counters, devices")
	flags.String(&cfg.MQTT.Addr, "mqtt", "MQTT listen address")
	flags.String(&cfg.HTTP.Addr, "http", "HTTP API listen address")
	flags.String(&cfg.Influx.URL, "influx-url", "InfluxDB URL")
	flags.String(&cfg.Influx.Bucket, "influx-bucket", "InfluxDB bucket (1.8: database)")
	flags.String(&cfg.Influx.Org, "influx-org", "InfluxDB organisation (empty for 1.8)")
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
		if cfg, err = backend.LoadConfig(*configFile); err != nil {
			log.Error("config", "err", err)
			return 2
		}
	}
	// Flags given on the command line win over the file.
	flags.Apply()
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
