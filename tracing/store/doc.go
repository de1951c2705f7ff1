// Package store is kobs's embedded trace store ("kobs tracestore"): bleve
// indexes behind the subset of the Elasticsearch 7 REST API that the trace
// shipper (olivere/elastic/v7 BulkProcessor) and the journey queries use.
//
// The package owns:
//   - the on-disk layout under Config.Dir: one bleve (scorch) index per
//     Elasticsearch index in Dir/indices/<name>, with the Elasticsearch
//     mapping, settings and sequence number kept in the bleve internal store
//     so they are written in the same batch as the documents they describe;
//   - the translation of Elasticsearch mappings (explicit and dynamic) into
//     bleve fields, and of the query DSL subset (match_all, bool, term, terms,
//     range, match, match_phrase, ids, exists, prefix, wildcard,
//     constant_score, and query_string's Lucene subset) into bleve queries;
//   - aggregations (aggs.go) computed from doc values in one pass over the
//     matching documents: the bucket and metric types Grafana's
//     Elasticsearch datasource sends, answered in Elasticsearch's shape;
//   - searches for "the newest N" by a time field (topn.go), answered from
//     the newest slice of the field's values when that suffices, so a topic
//     page costs the same at any data size;
//   - the HTTP handler that answers with Elasticsearch 7.17's JSON response
//     and error shapes, so the same shipper and queries work unchanged against
//     a real Elasticsearch or OpenSearch cluster;
//   - retention: deleting indexes whose name ends in a YYYY.MM.DD date older
//     than Config.RetentionDays.
//
// It deliberately knows nothing about trace events: index names, document ids
// and field names are the caller's convention.
package store
