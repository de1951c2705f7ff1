// Package log owns a partition's on-disk log as Kafka lays it out (book ch. 5):
// a directory of segments named by their 20-digit base offset, each a .log file
// of v2 record batches stored as received (only the base offset is rewritten),
// a sparse .index (relative offset -> file position) and a .timeindex
// (timestamp -> relative offset). It rolls segments, applies retention, keeps
// the log start offset, and recovers a torn tail after an unclean stop.
package log
