// Package store is the embedded Elasticsearch-7-compatible trace store built on bleve.
package store
