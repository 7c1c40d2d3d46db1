package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
)

// summaryCmd prints the backend's intake summary: the figures of the status
// line, as JSON.
func summaryCmd(args []string) int {
	fs := flag.NewFlagSet("semko summary", flag.ContinueOnError)
	client := clientFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c, err := client()
	if err != nil {
		fmt.Fprintln(os.Stderr, "semko summary:", err)
		return 2
	}
	var out json.RawMessage
	if err := c.do(context.Background(), "GET", "/api/v1/summary", nil, &out); err != nil {
		fmt.Fprintln(os.Stderr, "semko summary:", err)
		return 1
	}
	os.Stdout.Write(append(out, '\n'))
	return 0
}
