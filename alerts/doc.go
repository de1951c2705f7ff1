// Package alerts generates the Prometheus alerting rules and their unit tests.
package alerts
