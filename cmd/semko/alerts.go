package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/alertapi"
)

// alertsCmd: semko alerts list|ack|resolve.
func alertsCmd(args []string) int { return alertsMain(args, os.Stdout, os.Stderr) }

// silencesCmd: semko silences list|add|rm.
func silencesCmd(args []string) int { return silencesMain(args, os.Stdout, os.Stderr) }

const alertsUsage = `usage:
  semko alerts list [-state open|firing|acknowledged|resolved] [-kind K] [-org O] [-site S] [-device D] [-limit N] [-json]
  semko alerts ack [-by NAME] [-m COMMENT] ID
  semko alerts resolve [-by NAME] [-m COMMENT] ID`

func alertsMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, alertsUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("semko alerts "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := clientFlags(fs)
	fail := func(err error) int {
		fmt.Fprintf(stderr, "semko alerts %s: %v\n", sub, err)
		return 1
	}
	switch sub {
	case "list":
		state := fs.String("state", "open", "open, firing, acknowledged, resolved or all")
		kind := fs.String("kind", "", "only this kind (offline, negative_vote, ...)")
		org := fs.String("org", "", "only this organisation")
		site := fs.String("site", "", "only this site")
		device := fs.String("device", "", "only this device")
		limit := fs.Int("limit", 100, "at most this many, newest first")
		asJSON := fs.Bool("json", false, "print JSON instead of a table")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		c, err := client()
		if err != nil {
			return fail(err)
		}
		q := url.Values{}
		for k, v := range map[string]string{"kind": *kind, "org": *org, "site": *site, "device": *device} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if *state != "all" {
			q.Set("state", *state)
		}
		q.Set("limit", fmt.Sprint(*limit))
		var out alertapi.ListAnswer
		if err := c.do(context.Background(), "GET", "/api/v1/alerts?"+q.Encode(), nil, &out); err != nil {
			return fail(err)
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			enc.Encode(out.Alerts)
			return 0
		}
		printAlerts(stdout, out.Alerts)
		return 0
	case "ack", "resolve":
		by := fs.String("by", os.Getenv("USER"), "who acts (default $USER)")
		comment := fs.String("m", "", "comment for the audit trail")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() != 1 {
			fmt.Fprintln(stderr, alertsUsage)
			return 2
		}
		c, err := client()
		if err != nil {
			return fail(err)
		}
		var a alert.Alert
		path := "/api/v1/alerts/" + url.PathEscape(fs.Arg(0)) + "/" + sub
		if err := c.do(context.Background(), "POST", path, alertapi.Action{By: *by, Comment: *comment}, &a); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "alert %d %s by %s\n", a.ID, a.State, *by)
		return 0
	}
	fmt.Fprintln(stderr, alertsUsage)
	return 2
}

func printAlerts(w io.Writer, list []alert.Alert) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tSEVERITY\tKIND\tSUBJECT\tCOUNT\tSINCE\tDUE\tMESSAGE")
	for _, a := range list {
		msg := a.Message
		if a.MutedBy != "" {
			msg = "[muted: " + a.MutedBy + "] " + msg
		}
		due := "-"
		if !a.DueAt.IsZero() && a.State == alert.StateFiring {
			due = a.DueAt.Local().Format("Mon 15:04")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", a.ID, a.State, a.Severity, a.Kind,
			strings.Trim(a.Subject.Key(), "/"), a.Count, a.StartsAt.Local().Format("01-02 15:04"), due, msg)
	}
	tw.Flush()
}

const silencesUsage = `usage:
  semko silences list
  semko silences add -match LABEL=VALUE [-match ...] -for DURATION [-by NAME] [-m COMMENT]
      labels: kind, severity, org, site, counter, device, operator; VALUE may list alternatives: kind=offline,stuck_key
  semko silences rm ID`

// matchFlag collects -match label=value.
type matchFlag alert.Matchers

func (m matchFlag) String() string { return fmt.Sprint(map[string]string(m)) }

func (m matchFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" || v == "" {
		return fmt.Errorf("want LABEL=VALUE, got %q", s)
	}
	m[k] = v
	return nil
}

func silencesMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, silencesUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("semko silences "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := clientFlags(fs)
	fail := func(err error) int {
		fmt.Fprintf(stderr, "semko silences %s: %v\n", sub, err)
		return 1
	}
	switch sub {
	case "list":
		if err := fs.Parse(args); err != nil {
			return 2
		}
		c, err := client()
		if err != nil {
			return fail(err)
		}
		var out alertapi.SilencesAnswer
		if err := c.do(context.Background(), "GET", "/api/v1/silences", nil, &out); err != nil {
			return fail(err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tMATCHERS\tSTARTS\tENDS\tBY\tCOMMENT")
		for _, s := range out.Silences {
			fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%s\n", s.ID, map[string]string(s.Matchers),
				s.StartsAt.Local().Format("01-02 15:04"), s.EndsAt.Local().Format("01-02 15:04"), s.CreatedBy, s.Comment)
		}
		tw.Flush()
		return 0
	case "add":
		match := matchFlag{}
		fs.Var(match, "match", "LABEL=VALUE the silence matches (repeatable)")
		dur := fs.Duration("for", time.Hour, "how long the silence lasts")
		by := fs.String("by", os.Getenv("USER"), "who silences (default $USER)")
		comment := fs.String("m", "", "why")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		c, err := client()
		if err != nil {
			return fail(err)
		}
		var s alert.Silence
		req := alertapi.SilenceRequest{Matchers: alert.Matchers(match), Duration: dur.String(), CreatedBy: *by, Comment: *comment}
		if err := c.do(context.Background(), "POST", "/api/v1/silences", req, &s); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "silence %s until %s\n", s.ID, s.EndsAt.Local().Format(time.DateTime))
		return 0
	case "rm":
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() != 1 {
			fmt.Fprintln(stderr, silencesUsage)
			return 2
		}
		c, err := client()
		if err != nil {
			return fail(err)
		}
		if err := c.do(context.Background(), "DELETE", "/api/v1/silences/"+url.PathEscape(fs.Arg(0)), nil, nil); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "silence %s removed\n", fs.Arg(0))
		return 0
	}
	fmt.Fprintln(stderr, silencesUsage)
	return 2
}
