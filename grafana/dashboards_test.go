package grafana

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// datasourceUID is the uid both provisioned datasources carry and every
// panel refers to.
const datasourceUID = "semko-influxdb"

// dashboard is the part of a dashboard's JSON the tests read.
type dashboard struct {
	file       string
	raw        map[string]any
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name       string         `json:"name"`
			Datasource map[string]any `json:"datasource"`
			Query      string         `json:"query"`
			BuiltIn    int            `json:"builtIn"`
		} `json:"list"`
	} `json:"annotations"`
}

type panel struct {
	ID       int    `json:"id"`
	Type     string `json:"type"`
	Title    string `json:"title"`
	TimeFrom string `json:"timeFrom"`
	GridPos  struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Collapsed bool     `json:"collapsed"`
	Panels    []panel  `json:"panels"` // children of a collapsed row
	Targets   []target `json:"targets"`
}

type target struct {
	RefID        string `json:"refId"`
	Query        string `json:"query"`
	ResultFormat string `json:"resultFormat"`
}

type variable struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Query   any    `json:"query"`
	Current struct {
		Value any `json:"value"`
	} `json:"current"`
}

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := filepath.Glob("dashboards/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("found %d dashboards, want at least 4", len(files))
	}
	var out []dashboard
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := dashboard{file: filepath.Base(f)}
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := json.Unmarshal(raw, &d.raw); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, d)
	}
	return out
}

// allPanels flattens rows: their children count as panels too.
func (d dashboard) allPanels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

func TestDashboardStructure(t *testing.T) {
	uids := map[string]string{}
	for _, d := range loadDashboards(t) {
		t.Run(d.file, func(t *testing.T) {
			if d.UID == "" || d.Title == "" {
				t.Errorf("uid %q, title %q: both are required", d.UID, d.Title)
			}
			if other, dup := uids[d.UID]; dup {
				t.Errorf("uid %q also used by %s", d.UID, other)
			}
			uids[d.UID] = d.file

			ids := map[int]string{}
			for _, p := range d.allPanels() {
				if p.ID == 0 {
					t.Errorf("panel %q has no id", p.Title)
				}
				if other, dup := ids[p.ID]; dup {
					t.Errorf("panel id %d used by %q and %q", p.ID, other, p.Title)
				}
				ids[p.ID] = p.Title
			}

			// Grid positions of the visible panels (collapsed rows keep
			// their children out of the grid) must not overlap.
			visible := d.Panels
			for i, a := range visible {
				g := a.GridPos
				if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
					t.Errorf("panel %q: gridPos %+v outside the 24-column grid", a.Title, g)
				}
				for _, b := range visible[i+1:] {
					h := b.GridPos
					if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
						t.Errorf("panels %q %+v and %q %+v overlap", a.Title, g, b.Title, h)
					}
				}
			}

			// Every datasource reference, wherever it is, is ours (or
			// Grafana's own built-in annotation source).
			walk(d.raw, "", func(path string, v any) {
				if !strings.HasSuffix(path, ".datasource") {
					return
				}
				ref, ok := v.(map[string]any)
				if !ok {
					t.Errorf("%s: datasource %v is not a {type, uid} reference", path, v)
					return
				}
				if ref["uid"] == "-- Grafana --" && ref["type"] == "grafana" {
					return
				}
				if ref["uid"] != datasourceUID || ref["type"] != "influxdb" {
					t.Errorf("%s: datasource %v, want influxdb uid %q", path, ref, datasourceUID)
				}
			})

			// Every variable used anywhere is defined.
			defined := map[string]bool{}
			for _, v := range d.Templating.List {
				defined[v.Name] = true
			}
			walk(d.raw, "", func(path string, v any) {
				s, ok := v.(string)
				if !ok {
					return
				}
				for _, name := range usedVariables(s) {
					if !defined[name] {
						t.Errorf("%s uses $%s, which the dashboard does not define", path, name)
					}
				}
			})
			for _, p := range d.allPanels() {
				if p.Type == "row" {
					continue
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
				for _, tg := range p.Targets {
					if !strings.Contains(tg.Query, "$timeFilter") && !strings.HasPrefix(tg.Query, "SHOW") {
						t.Errorf("panel %q %s: no $timeFilter: the time picker would not apply", p.Title, tg.RefID)
					}
				}
			}
		})
	}
}

// walk calls fn for every value in a decoded JSON tree, with a dotted path.
func walk(v any, path string, fn func(path string, v any)) {
	fn(path, v)
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			walk(c, path+"."+k, fn)
		}
	case []any:
		for i, c := range x {
			walk(c, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	}
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z0-9_.]+)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z0-9_]+)\]\]`)

// usedVariables lists the dashboard variables s refers to, leaving out
// Grafana's built-ins ($__interval, ${__value.raw}...), the InfluxDB
// datasource's macros and alias patterns ($timeFilter, $tag_x, $col).
func usedVariables(s string) []string {
	var out []string
	for _, m := range varRef.FindAllStringSubmatch(s, -1) {
		name := m[1] + m[2] + m[3]
		switch {
		case strings.HasPrefix(name, "__"), strings.HasPrefix(name, "tag_"),
			name == "timeFilter", name == "interval", name == "col", name == "m", name == "measurement":
			continue
		}
		out = append(out, name)
	}
	return out
}

func TestUsedVariables(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`"org" =~ /^$org$/ AND $timeFilter GROUP BY time($__interval)`, []string{"org"}},
		{`/d/x?var-site=${site}&var-c=${__value.raw}&${__url_time_range}`, []string{"site"}},
		{`${counter:regex} [[service]] $tag_org`, []string{"counter", "service"}},
		{`costs $5`, nil},
	}
	for _, tt := range tests {
		if got := usedVariables(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("usedVariables(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestProvisioning(t *testing.T) {
	for _, f := range []string{"semko-influxdb-1.8.yaml", "semko-influxdb-2.yaml"} {
		t.Run(f, func(t *testing.T) {
			var ds struct {
				APIVersion  int `yaml:"apiVersion"`
				Datasources []struct {
					UID, Type, Access, URL string
					JSONData               map[string]any `yaml:"jsonData"`
					SecureJSONData         map[string]any `yaml:"secureJsonData"`
				}
			}
			readYAML(t, filepath.Join("provisioning/datasources", f), &ds)
			if ds.APIVersion != 1 || len(ds.Datasources) != 1 {
				t.Fatalf("want apiVersion 1 and one datasource, got %+v", ds)
			}
			d := ds.Datasources[0]
			if d.UID != datasourceUID || d.Type != "influxdb" || d.Access != "proxy" || d.JSONData["dbName"] != "semko" || d.JSONData["httpMode"] != "POST" {
				t.Errorf("datasource %+v: want uid %s, influxdb, proxy, dbName semko, POST", d, datasourceUID)
			}
			if _, flux := d.JSONData["version"]; flux {
				t.Errorf("jsonData.version set: the dashboards are InfluxQL, the default")
			}
			if strings.Contains(f, "-2") && (d.JSONData["httpHeaderName1"] != "Authorization" ||
				!strings.HasPrefix(fmt.Sprint(d.SecureJSONData["httpHeaderValue1"]), "Token ")) {
				t.Errorf("2.x datasource must send Authorization: Token ...")
			}
		})
	}
	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string
			Options map[string]any
		}
	}
	readYAML(t, "provisioning/dashboards/semko.yaml", &prov)
	if prov.APIVersion != 1 || len(prov.Providers) != 1 || prov.Providers[0].Type != "file" || prov.Providers[0].Options["path"] == nil {
		t.Errorf("dashboard provider %+v: want one file provider with a path", prov)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
