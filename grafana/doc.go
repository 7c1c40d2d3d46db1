// Package grafana holds no code: it is Semko's Grafana provisioning
// (provisioning/), the dashboards (dashboards/*.json), the launcher run.sh,
// and the tests that prove every dashboard query runs against a real
// InfluxDB and shows the right figures.
package grafana
