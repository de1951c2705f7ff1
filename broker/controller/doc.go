// Package controller is kobs's metadata quorum and controller: the KRaft
// part of a Kafka cluster, built on hashicorp/raft.
//
// The metadata log is a raft log (durable in raft.db, a bbolt store from
// hashicorp/raft-boltdb, with raft snapshots beside it) whose entries are
// batches of records: broker registrations, fence/unfence, topics, whole
// partition states (leader, leader epoch, partition epoch, replicas, ISR,
// adding/removing replicas), topic config overrides, topic removals and the
// active controller's marker. Every node applies the same entries in the
// same order to build the next immutable metadata.Image and publishes it on
// its metadata.Publisher; a snapshot is the whole state, so a restart loads
// the newest snapshot and replays only the entries after it.
//
// Decisions are taken only by the active controller (the raft leader), one
// at a time, against its applied state: replica placement, leader
// elections, ISR changes, fencing. They become records; nothing on the
// other nodes decides anything, they only apply.
package controller
