// Package jolokia serves the telemetry registry over the Jolokia protocol,
// Jolokia 1.x flavour (agent 1.7.2, protocol 7.2), so Telegraf's jolokia2
// input, hawtio-era consoles and scripts written against a Kafka broker with
// the Jolokia JVM agent work unchanged against kobs.
//
// Supported: version; read of one MBean (one attribute -> bare value, several
// or none -> map) and of ObjectName patterns (map of canonical name -> map);
// inner paths with "*" wildcards; search; list (desc, class, attr; path and
// maxDepth); GET path form with "!" escaping and the ?p= form; POST of one
// request or a bulk array (path info ignored); processing parameters
// canonicalNaming, ignoreErrors, includeStackTrace, maxDepth, mimeType.
//
// Shapes follow Jolokia 1.x: HTTP 200 whenever JSON is produced, the outcome
// in each response's "status"; timestamps in epoch seconds; errors as
// {"request", "status", "error_type", "error": "<class> : <message>",
// "stacktrace"}; doubles written like Java's Double.toString (3.0, 1.0E-4);
// Content-Type text/plain unless mimeType=application/json.
//
// Deliberate differences: write and exec are refused (the metrics are
// read-only and kobs executes no MBean operations, so list shows no "op");
// stack traces hold only the Java first line; a malformed element of a bulk
// array fails only that element, not the whole bulk.
//
// Agent holds the logic and returns structs; Handler only decodes and
// encodes HTTP. Client reads a Jolokia endpoint (kobs or a JVM agent) for the
// "kobs metrics" command.
package jolokia
