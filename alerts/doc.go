// Package alerts generates the Prometheus alerting rules for kobs clusters
// (alerts/generated/kobs-rules.yml), their promtool unit tests
// (kobs-rules.test.yml: every alert firing and staying quiet), and a
// Prometheus config that scrapes brokers and the agent and sends alerts to
// Alertmanager (prometheus.yml). Rules are code: each carries a severity
// label, summary and description annotations and a runbook_url into
// alerts/RUNBOOK.md. alertmanager.yml is a hand-written example receiver
// configuration.
package alerts
