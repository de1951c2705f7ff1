// Package soak holds the long-running checks of a replicated kobs cluster
// that do not belong in `make test`: kill -9 rounds of the partition leader
// and a rolling restart under an idempotent acks=all producer, a connection
// flood and a disk-full cycle (`make soak`), and the cluster benchmarks
// (failover time, restart of a broker holding 1,000 partitions; `make
// bench`). Every check counts what was acknowledged against what is read
// back and fails when an acknowledged record is missing or duplicated.
//
// The tests sit behind the `soak` build tag, so `go test ./...` compiles
// only this file.
package soak
