// Command semko-grafana-orgs writes Grafana provisioning with one Grafana
// organisation per Semko organisation of a fleet file (see grafana/orgs
// and grafana/README.md):
//
//	semko-grafana-orgs -fleet var/fleet.yaml -out var/grafana/orgs
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/grafana/orgs"
)

func main() {
	fleetFile := flag.String("fleet", "var/fleet.yaml", "the fleet file")
	out := flag.String("out", "var/grafana/orgs", "where to write the provisioning")
	dashboards := flag.String("dashboards", "grafana/dashboards", "Semko's dashboards")
	datasource := flag.String("datasource", "grafana/provisioning/datasources/semko-influxdb-1.8.yaml", "the datasource file to copy into every organisation")
	dashPath := flag.String("dashboards-path", "", "where Grafana reads the generated dashboards (default: <out>/dashboards)")
	flag.Parse()
	reg, err := registry.Load(*fleetFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	names := map[string]string{}
	for _, o := range reg.Organisations() {
		names[o.ID] = o.Name
	}
	list := orgs.Assign(names)
	if err := orgs.Generate(list, orgs.Options{Dashboards: *dashboards, Datasource: *datasource, Out: *out, DashboardsPath: *dashPath}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, o := range list {
		fmt.Printf("Grafana organisation %d: %s (%s)\n", o.GrafanaID, o.Name, o.ID)
	}
}
