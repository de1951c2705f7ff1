// Package jolokia serves the telemetry registry over the Jolokia protocol.
package jolokia
