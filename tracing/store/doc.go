// Package store is kobs's embedded trace store ("kobs tracestore"): an
// append-only segment log with an in-memory index behind the subset of the
// Elasticsearch 7 REST API that the trace shipper (olivere/elastic/v7
// BulkProcessor) and the journey queries use.
//
// The package owns:
//   - the on-disk layout under Config.Dir: per Elasticsearch index a
//     directory Dir/indices/<name> holding meta.json (mapping, settings,
//     replaced atomically) and segment files seg-<n>.log of checksummed
//     records, each an indexed or deleted document with its _seq_no and
//     _version (seglog.go). A _bulk is one write and one fsync before any
//     item is acknowledged; a torn tail left by a crash is cut off at
//     start, logged and counted in GET /_nodes/stats;
//   - the in-memory index rebuilt from the log at start (memindex.go):
//     keyword and text postings, numeric/date/boolean columns with
//     per-block bounds, keyword doc values, _field_names by document shape;
//   - the translation of Elasticsearch mappings (explicit and dynamic) into
//     indexed values (document.go), and of the query DSL subset (match_all,
//     bool, term, terms, range, match, match_phrase, ids, exists, prefix,
//     wildcard, constant_score, and query_string's Lucene subset) into a
//     query tree evaluated to sorted document sets (query.go, eval.go);
//   - aggregations (aggs.go) computed from doc values in one pass over the
//     matching documents: the bucket and metric types Grafana's
//     Elasticsearch datasource sends, answered in Elasticsearch's shape;
//   - sorted searches (topn.go) that keep only the best from+size matches
//     and skip blocks of documents whose values cannot enter them, so a
//     topic page ("the newest 50") reads little beyond its own hits;
//   - the HTTP handler that answers with Elasticsearch 7.17's JSON response
//     and error shapes, so the same shipper and queries work unchanged against
//     a real Elasticsearch or OpenSearch cluster;
//   - retention: deleting indexes whose name ends in a YYYY.MM.DD date older
//     than Config.RetentionDays.
//
// It deliberately knows nothing about trace events: index names, document ids
// and field names are the caller's convention.
package store
