package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/semko/semko/backend/fleet/fleetapi"
	"github.com/semko/semko/backend/fleet/fleetdb"
	"github.com/semko/semko/fleet/devconfig"
)

// devicesCmd: semko devices list|show|add|move|retire|assign|config|export.
func devicesCmd(args []string) int { return devicesMain(args, os.Stdout, os.Stderr) }

const devicesUsage = `usage:
  semko devices list [-json]
  semko devices show ID
  semko devices add [-counter C] [-model M] [-serial S] [-fw V] [-installed YYYY-MM-DD] ID
  semko devices move ID COUNTER          (COUNTER "-" takes the device off its counter)
  semko devices retire ID
  semko devices assign [-operator O] [-service S] [-name N] [-site S] COUNTER
  semko devices config ID                desired vs applied configuration
  semko devices config get org|site|device ID
  semko devices config set org|site|device ID JSON|@FILE    replaces that level's override ('{}' clears it)
  semko devices export                   the fleet as a fleet file (YAML)`

func devicesMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, devicesUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("semko devices "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := clientFlags(fs)
	fail := func(err error) int {
		fmt.Fprintf(stderr, "semko devices %s: %v\n", sub, err)
		return 1
	}
	usage := func() int {
		fmt.Fprintln(stderr, devicesUsage)
		return 2
	}
	var (
		asJSON                            *bool
		counter, model, serial, fw, inst  *string
		operator, service, name, siteFlag *string
		nargs                             int
	)
	switch sub {
	case "list":
		asJSON, nargs = fs.Bool("json", false, "print JSON instead of a table"), 0
	case "show", "retire":
		nargs = 1
	case "add":
		counter = fs.String("counter", "", "install at this counter")
		model = fs.String("model", "", "hardware model")
		serial = fs.String("serial", "", "hardware serial number")
		fw = fs.String("fw", "", "firmware installed")
		inst = fs.String("installed", "", "installation date YYYY-MM-DD (default today when -counter is given)")
		nargs = 1
	case "move":
		nargs = 2
	case "assign":
		operator = fs.String("operator", "", `default operator ("-" clears)`)
		service = fs.String("service", "", `default service ("-" clears)`)
		name = fs.String("name", "", "display name")
		siteFlag = fs.String("site", "", "site (creates the counter when new)")
		nargs = 1
	case "config":
		nargs = -1
	case "export":
		nargs = 0
	default:
		return usage()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rest := fs.Args()
	if nargs >= 0 && len(rest) != nargs {
		return usage()
	}
	c, err := client()
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	dev := func(id string) string { return "/api/v1/fleet/devices/" + url.PathEscape(id) }

	switch sub {
	case "list":
		var out []fleetapi.DeviceView
		if err := c.do(ctx, http.MethodGet, "/api/v1/fleet/devices", nil, &out); err != nil {
			return fail(err)
		}
		if *asJSON {
			return printJSON(stdout, out)
		}
		printDevices(stdout, out)
	case "show":
		var out json.RawMessage
		if err := c.do(ctx, http.MethodGet, dev(rest[0]), nil, &out); err != nil {
			return fail(err)
		}
		stdout.Write(append(out, '\n'))
	case "add":
		nd := fleetdb.NewDevice{ID: rest[0], Counter: *counter, Model: *model, Serial: *serial, FW: *fw, Installed: *inst}
		var out struct{ Device, Secret string }
		if err := c.do(ctx, http.MethodPost, "/api/v1/fleet/devices", nd, &out); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "device %s added\nsecret: %s\n(shown this once: put it in the edge agent's configuration now)\n", out.Device, out.Secret)
	case "move":
		to := rest[1]
		if to == "-" {
			to = ""
		}
		var out fleetapi.DeviceView
		if err := c.do(ctx, http.MethodPatch, dev(rest[0]), fleetdb.DevicePatch{Counter: &to}, &out); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "device %s now at %s\n", out.ID, placeText(out))
	case "retire":
		if err := c.do(ctx, http.MethodDelete, dev(rest[0]), nil, nil); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "device %s retired\n", rest[0])
	case "assign":
		var p fleetdb.CounterPatch
		orClear := func(s *string) *string {
			switch *s {
			case "":
				return nil
			case "-":
				empty := ""
				return &empty
			}
			return s
		}
		p.Operator, p.Service, p.Name, p.Site = orClear(operator), orClear(service), orClear(name), orClear(siteFlag)
		if err := c.do(ctx, http.MethodPatch, "/api/v1/fleet/counters/"+url.PathEscape(rest[0]), p, nil); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "counter %s updated\n", rest[0])
	case "config":
		return configSub(ctx, c, rest, stdout, stderr, fail, usage)
	case "export":
		b, err := c.raw(ctx, "/api/v1/fleet/export")
		if err != nil {
			return fail(err)
		}
		stdout.Write(b)
	}
	return 0
}

func configSub(ctx context.Context, c *apiClient, rest []string, stdout, stderr io.Writer, fail func(error) int, usage func() int) int {
	switch {
	case len(rest) == 1:
		var out fleetapi.DeviceConfig
		if err := c.do(ctx, http.MethodGet, "/api/v1/fleet/devices/"+url.PathEscape(rest[0])+"/config", nil, &out); err != nil {
			return fail(err)
		}
		return printJSON(stdout, out)
	case len(rest) == 3 && rest[0] == "get":
		var out devconfig.Override
		if err := c.do(ctx, http.MethodGet, overridePath(rest[1], rest[2]), nil, &out); err != nil {
			return fail(err)
		}
		return printJSON(stdout, out)
	case len(rest) == 4 && rest[0] == "set":
		body := rest[3]
		if file, ok := strings.CutPrefix(body, "@"); ok {
			b, err := os.ReadFile(file)
			if err != nil {
				return fail(err)
			}
			body = string(b)
		}
		var out devconfig.Override
		if err := c.do(ctx, http.MethodPut, overridePath(rest[1], rest[2]), json.RawMessage(body), &out); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "%s %s config override set\n", rest[1], rest[2])
		return 0
	}
	return usage()
}

func overridePath(level, id string) string {
	return "/api/v1/fleet/config/" + url.PathEscape(level) + "/" + url.PathEscape(id)
}

func printJSON(w io.Writer, v any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return 1
	}
	return 0
}

func placeText(d fleetapi.DeviceView) string {
	if d.Placement.Counter == "" {
		return "no counter"
	}
	return d.Placement.Org + "/" + d.Placement.Site + "/" + d.Placement.Counter
}

func printDevices(w io.Writer, devs []fleetapi.DeviceView) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tSTATE\tPLACE\tONLINE\tFW\tCONFIG\tAPPLIED")
	for _, d := range devs {
		online, fw, desired, applied := "-", d.FW, "-", "-"
		if d.Live != nil {
			online = fmt.Sprint(d.Live.Online)
			if d.Live.FW != "" {
				fw = d.Live.FW
			}
		}
		if d.Config != nil && !d.Config.Managed {
			desired = "edge defaults"
		} else if d.Config != nil {
			desired, applied = d.Config.Desired, d.Config.Applied
			switch {
			case d.Config.Error != "":
				applied += " (refused: " + d.Config.Error + ")"
			case d.Config.InSync:
				applied = "in sync"
			case applied == "":
				applied = "pending"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.State, placeText(d), online, fw, desired, applied)
	}
	tw.Flush()
}

// raw GETs a non-JSON answer (the exported fleet file).
func (c *apiClient) raw(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read answer: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}
