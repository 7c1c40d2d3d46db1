package grafana

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/semko/semko/broker"
	"github.com/semko/semko/firmware-sim/fleet"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/grafana/orgs"
)

// TestGrafanaOrganisations generates the provisioning of one Grafana
// organisation per Semko organisation from a fleet file and checks that
// every organisation gets the datasource and every dashboard, with the
// "org" variable a hidden constant of its own id (so every query that
// filters by $org covers it alone), no dashboard editable, and the
// providers pointing at the right organisation and folder.
func TestGrafanaOrganisations(t *testing.T) {
	dir := t.TempDir()
	model := fleet.Generate(fleet.Spec{Seed: 5, Orgs: 3})
	fleetFile := filepath.Join(dir, "fleet.yaml")
	if err := model.WriteFleetFile(fleetFile, broker.HashSecret); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Load(fleetFile)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, o := range reg.Organisations() {
		names[o.ID] = o.Name
	}
	list := orgs.Assign(names)
	out := filepath.Join(dir, "out")
	if err := orgs.Generate(list, orgs.Options{Dashboards: "dashboards", Datasource: "provisioning/datasources/semko-influxdb-1.8.yaml", Out: out}); err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].GrafanaID != 2 || list[2].GrafanaID != 4 {
		t.Fatalf("organisations %+v", list)
	}
	originals, _ := filepath.Glob("dashboards/*.json")
	for _, f := range originals {
		raw, _ := os.ReadFile(f)
		if !strings.Contains(string(raw), "$org") {
			t.Errorf("%s never filters by $org: pinning the variable would not scope it", f)
		}
	}

	var ds struct {
		Datasources []map[string]any `yaml:"datasources"`
	}
	var prov struct {
		Providers []struct {
			Name           string         `yaml:"name"`
			OrgID          int            `yaml:"orgId"`
			AllowUIUpdates bool           `yaml:"allowUiUpdates"`
			Options        map[string]any `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(out, "provisioning/datasources/semko-orgs.yaml"), &ds)
	readYAML(t, filepath.Join(out, "provisioning/dashboards/semko-orgs.yaml"), &prov)
	if len(ds.Datasources) != 3 || len(prov.Providers) != 3 {
		t.Fatalf("%d datasources, %d providers, want 3 each", len(ds.Datasources), len(prov.Providers))
	}
	for i, o := range list {
		if ds.Datasources[i]["orgId"] != o.GrafanaID || ds.Datasources[i]["uid"] != "semko-influxdb" || ds.Datasources[i]["editable"] != false {
			t.Errorf("datasource %d: %+v", i, ds.Datasources[i])
		}
		p := prov.Providers[i]
		if p.OrgID != o.GrafanaID || p.AllowUIUpdates || p.Options["path"] != filepath.Join(out, "dashboards", o.ID) {
			t.Errorf("provider %d: %+v", i, p)
		}
		for _, f := range originals {
			var d struct {
				Editable   bool `json:"editable"`
				Templating struct {
					List []map[string]any `json:"list"`
				} `json:"templating"`
			}
			raw, err := os.ReadFile(filepath.Join(out, "dashboards", o.ID, filepath.Base(f)))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &d); err != nil {
				t.Fatal(err)
			}
			if d.Editable {
				t.Errorf("%s of %s is editable", f, o.ID)
			}
			pinned := 0
			for _, v := range d.Templating.List {
				if v["name"] == "org" {
					pinned++
					if v["type"] != "constant" || v["query"] != o.ID || v["hide"] != float64(2) {
						t.Errorf("%s of %s: org variable %+v", f, o.ID, v)
					}
				}
			}
			if pinned != 1 {
				t.Errorf("%s of %s: %d org variables", f, o.ID, pinned)
			}
		}
	}
	if _, err := orgs.Pin([]byte(`{"templating":{"list":[]}}`), "x"); err == nil {
		t.Error("a dashboard without an org variable was pinned")
	}
}
