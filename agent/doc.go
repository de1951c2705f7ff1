// Package agent is the sidecar that watches any Kafka-protocol cluster through
// kadm: consumer lag and failing-ISR partitions.
package agent
