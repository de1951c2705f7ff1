// Package dashboards generates the kobs Grafana dashboards with
// grafana-foundation-sdk (dashboards/generated/*.json, plus Grafana
// provisioning files for the Prometheus and trace-store datasources and a
// dashboard provider), and renders them with live data into PNG images
// (Renderer) for places where no Grafana runs.
//
// Dashboards are specs (Spec, Row, Panel) built into Grafana's JSON model
// by Build; every panel must have a title, a unit and a description.
// Pending lists the metric names the dashboards and the alert rules query
// whose exporters have not landed yet, PendingFailure the panels whose
// failure the live test cannot induce yet; the live test prints both and
// fails when a listed name appears in a scrape, so the lists only shrink.
//
// promqlcheck (tests only) parses every query with Prometheus's parser;
// PromClient and ESClient are the small HTTP clients the renderer and the
// tests share; ESRequest builds _msearch lines as Grafana's Elasticsearch
// datasource does.
package dashboards
