// Package jsonparse decodes JSON without reflection, accepting exactly what
// encoding/json accepts. ParseObject builds a document as encoding/json
// does with UseNumber (the trace store decodes every stored document with
// it); Scanner walks a JSON text value by value, so a caller that needs a
// few fields of a document (the trace store's _bulk action lines, the trace
// shipper's routing fields) reads them in place and validates the rest
// without allocating it.
//
// encoding/json's reflection-driven decoder was half of the CPU per event
// both in the trace store and in the trace shipper; tests and fuzz targets
// compare this package with encoding/json on the same inputs.
package jsonparse
