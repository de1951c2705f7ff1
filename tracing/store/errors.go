package store

import (
	"errors"
	"fmt"
	"net/http"
	"syscall"
)

// esError is an Elasticsearch exception as it appears on the wire: the body
// of {"error": ...} for request failures and of the per-item "error" in bulk
// responses. Field order follows Elasticsearch 7.17's JSON output, and the
// optional fields are exactly the metadata keys Elasticsearch adds for the
// exception types we produce (olivere/elastic's ErrorDetails decodes them).
type esError struct {
	Type         string     `json:"type"`
	Reason       string     `json:"reason"`
	ResourceType string     `json:"resource.type,omitempty"`
	ResourceID   string     `json:"resource.id,omitempty"`
	IndexUUID    string     `json:"index_uuid,omitempty"`
	Shard        string     `json:"shard,omitempty"`
	Index        string     `json:"index,omitempty"`
	Line         int        `json:"line,omitempty"`
	Col          int        `json:"col,omitempty"`
	CausedBy     *esError   `json:"caused_by,omitempty"`
	status       int        // HTTP status, not serialised inside the error object
	rootCause    []*esError // only used by the top-level envelope
}

func (e *esError) Error() string { return e.Type + ": " + e.Reason }

// errorEnvelope is the top-level body of a failed request:
// {"error":{"root_cause":[...],"type":...,"reason":...},"status":N}.
type errorEnvelope struct {
	Error  errorBody `json:"error"`
	Status int       `json:"status"`
}

type errorBody struct {
	RootCause []*esError `json:"root_cause"`
	*esError
}

func envelope(e *esError) errorEnvelope {
	rc := e.rootCause
	if rc == nil {
		// Elasticsearch's root cause is the innermost ElasticsearchException;
		// for the flat errors we raise that is the error itself, without its
		// caused_by chain.
		inner := *e
		for inner.CausedBy != nil && inner.CausedBy.Type != "" && isRootCauseType(inner.CausedBy.Type) {
			inner = *inner.CausedBy
		}
		inner.CausedBy = nil
		rc = []*esError{&inner}
	}
	return errorEnvelope{Error: errorBody{RootCause: rc, esError: e}, Status: e.status}
}

// isRootCauseType reports whether a caused_by of this type is reported as the
// root cause by Elasticsearch (it unwraps to the deepest ElasticsearchException;
// plain Java exceptions such as json_parse_exception stay in caused_by).
func isRootCauseType(t string) bool {
	switch t {
	case "illegal_argument_exception", "json_parse_exception", "number_format_exception", "date_time_parse_exception":
		return false
	}
	return true
}

func statusOf(err error) int {
	var e *esError
	if errors.As(err, &e) && e.status != 0 {
		return e.status
	}
	return http.StatusInternalServerError
}

// asESError converts any error to its wire form; unknown errors become a 500
// "exception" the way Elasticsearch reports unexpected Java exceptions.
func asESError(err error) *esError {
	var e *esError
	if errors.As(err, &e) {
		return e
	}
	return writeFailure("", err)
}

func errIndexNotFound(index string) *esError {
	return &esError{
		Type: "index_not_found_exception", Reason: fmt.Sprintf("no such index [%s]", index),
		ResourceType: "index_or_alias", ResourceID: index, IndexUUID: "_na_", Index: index,
		status: http.StatusNotFound,
	}
}

func errIndexExists(index, uuid string) *esError {
	return &esError{
		Type: "resource_already_exists_exception", Reason: fmt.Sprintf("index [%s/%s] already exists", index, uuid),
		IndexUUID: uuid, Index: index, status: http.StatusBadRequest,
	}
}

func errInvalidIndexName(index, why string) *esError {
	return &esError{
		Type: "invalid_index_name_exception", Reason: fmt.Sprintf("Invalid index name [%s], %s", index, why),
		IndexUUID: "_na_", Index: index, status: http.StatusBadRequest,
	}
}

func errVersionConflict(index, uuid, id string, version int64) *esError {
	return &esError{
		Type:      "version_conflict_engine_exception",
		Reason:    fmt.Sprintf("[%s]: version conflict, document already exists (current version [%d])", id, version),
		IndexUUID: uuid, Shard: "0", Index: index, status: http.StatusConflict,
	}
}

func errDocumentMissing(index, uuid, id string) *esError {
	return &esError{
		Type: "document_missing_exception", Reason: fmt.Sprintf("[_doc][%s]: document missing", id),
		IndexUUID: uuid, Shard: "0", Index: index, status: http.StatusNotFound,
	}
}

func errParsing(format string, args ...any) *esError {
	return &esError{Type: "parsing_exception", Reason: fmt.Sprintf(format, args...), Line: 1, Col: 1, status: http.StatusBadRequest}
}

func errIllegalArgument(format string, args ...any) *esError {
	return &esError{Type: "illegal_argument_exception", Reason: fmt.Sprintf(format, args...), status: http.StatusBadRequest}
}

func errMapperParsing(cause *esError, format string, args ...any) *esError {
	return &esError{Type: "mapper_parsing_exception", Reason: fmt.Sprintf(format, args...), CausedBy: cause, status: http.StatusBadRequest}
}

func errJSONParse(err error) *esError {
	return &esError{Type: "json_parse_exception", Reason: err.Error(), status: http.StatusBadRequest}
}

// writeFailure maps a storage error to what Elasticsearch reports in the same
// situation, so the shipper treats it the same way (it must not commit its
// offsets). A full disk is Elasticsearch's flood-stage block: 429
// cluster_block_exception, which olivere's BulkProcessor retries with backoff
// by default; any other I/O failure is a 500 the caller sees as a failed item.
func writeFailure(index string, err error) *esError {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return &esError{
			Type:   "cluster_block_exception",
			Reason: fmt.Sprintf("index [%s] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block]; %v", index, err),
			status: http.StatusTooManyRequests,
		}
	}
	return &esError{
		Type: "exception", Reason: fmt.Sprintf("write to index [%s] failed: %v", index, err),
		Index: index, status: http.StatusInternalServerError,
	}
}
