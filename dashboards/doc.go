// Package dashboards generates the Grafana dashboards with grafana-foundation-sdk.
package dashboards
