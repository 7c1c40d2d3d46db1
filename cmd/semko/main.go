// Command semko is the Semko backend and its command-line client.
//
//	semko [serve] [flags]     run the backend: embedded MQTT broker, ingest,
//	                          durable spool, InfluxDB writer, HTTP API
//	semko <command> ...       talk to a running backend's HTTP API
//
// Client commands find the backend with -server (default
// http://127.0.0.1:8080) and the token in SEMKO_API_TOKEN or -token-file.
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// commands are the subcommands besides serve. Each lives in its own file.
var commands = map[string]struct {
	run     func(args []string) int
	summary string
}{
	"serve":    {serve, "run the backend (the default when the first argument is a flag)"},
	"summary":  {summaryCmd, "print the intake summary (units online, votes in the last minute)"},
	"alerts":   {alertsCmd, "list, acknowledge or resolve alerts"},
	"silences": {silencesCmd, "list, add or remove alert silences"},
	"devices":  {devicesCmd, "list, add, move and retire devices; counters; config overrides; export the fleet"},
	"diag":     {diagnosticsCmd, "show open diagnostic findings and the checks' schedule; run one now"},
}

func main() { os.Exit(dispatch(os.Args[1:])) }

func dispatch(args []string) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return serve(args)
	}
	if args[0] == "help" {
		usage()
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "semko: unknown command %q\n", args[0])
		usage()
		return 2
	}
	return cmd.run(args[1:])
}

func usage() {
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: semko [serve] [flags] | semko <command> [args]\ncommands:")
	for _, name := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", name, commands[name].summary)
	}
}
