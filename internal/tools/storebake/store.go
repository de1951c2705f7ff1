package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/kobs-dev/kobs/tracing"
	"github.com/kobs-dev/kobs/tracing/store"
)

// storeEngine is the product's trace store, unchanged, behind its own
// Elasticsearch API; the daily indexes are created with the trace mapping,
// as the shipper creates them.
type storeEngine struct{ s *store.Store }

func openStore(dir string) (engine, error) {
	s, err := store.Open(store.Config{Dir: dir})
	if err != nil {
		return nil, err
	}
	e := &storeEngine{s: s}
	for _, day := range []string{"2026.11.25", "2026.11.26"} {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/"+tracing.IndexPrefix+day, strings.NewReader(tracing.Mapping)))
		if rec.Code != 200 && !strings.Contains(rec.Body.String(), "resource_already_exists_exception") {
			return nil, fmt.Errorf("create index: %d %s", rec.Code, rec.Body)
		}
	}
	return e, nil
}

func (e *storeEngine) handler() http.Handler { return e.s.Handler() }

func (e *storeEngine) query(q benchQuery) (string, string, []byte) {
	var body string
	switch q.kind {
	case "msg":
		body = fmt.Sprintf(`{"size":100,"query":{"bool":{"filter":[{"term":{"msg_id":%q}}]}},"sort":[{"ts":"asc"}]}`, q.msgID)
	case "key":
		body = fmt.Sprintf(`{"size":10,"query":{"bool":{"filter":[{"term":{"key":%q}},{"term":{"topic":%q}}]}},"sort":[{"ts":"desc"}]}`, q.key, q.topic)
	case "offset":
		body = fmt.Sprintf(`{"size":100,"query":{"bool":{"filter":[{"term":{"topic":%q}},{"term":{"partition":%d}},{"term":{"offset":%d}}]}}}`, q.topic, q.partition, q.offset)
	case "page":
		body = fmt.Sprintf(`{"size":50,"query":{"bool":{"filter":[{"term":{"topic":%q}},{"range":{"ts":{"gte":%d,"lte":%d,"format":"epoch_millis"}}}]}},"sort":[{"ts":"desc"}]}`, q.topic, q.from, q.to)
	}
	return http.MethodPost, "/" + tracing.IndexPrefix + "2*/_search", []byte(body)
}

func (e *storeEngine) settle() (time.Duration, error) {
	start := time.Now()
	rec := httptest.NewRecorder()
	e.s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/_flush", nil))
	if rec.Code != 200 {
		return 0, fmt.Errorf("flush: %d %s", rec.Code, rec.Body)
	}
	return time.Since(start), nil
}

func (e *storeEngine) close() error { return e.s.Close() }
