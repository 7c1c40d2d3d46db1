package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"time"
)

// diagnosticsCmd shows the open diagnostic findings and the checks'
// schedule, or runs one check now:
//
//	semko diag                      schedule and open findings, as JSON
//	semko diag run selftest         run a check now
func diagnosticsCmd(args []string) int {
	fs := flag.NewFlagSet("semko diag", flag.ContinueOnError)
	client := clientFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c, err := client()
	if err != nil {
		fmt.Fprintln(os.Stderr, "semko diag:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	method, path := "GET", "/api/v1/diagnostics"
	switch rest := fs.Args(); {
	case len(rest) == 0:
	case len(rest) == 2 && rest[0] == "run":
		method, path = "POST", "/api/v1/diagnostics/"+url.PathEscape(rest[1])
	default:
		fmt.Fprintln(os.Stderr, "usage: semko diag [run <check>]")
		return 2
	}
	var out json.RawMessage
	if err := c.do(ctx, method, path, nil, &out); err != nil {
		fmt.Fprintln(os.Stderr, "semko diag:", err)
		return 1
	}
	os.Stdout.Write(append(out, '\n'))
	return 0
}
