package agent

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Handler serves /metrics (Prometheus) and the JSON API:
//
//	GET /v1/health             collection state; HTTP 503 when stale
//	GET /v1/groups             every group: state, members, status, lag sums
//	GET /v1/groups/{group}     one group with every partition (404 if unknown)
//	GET /v1/partitions/failing failing-ISR partitions and, per broker, the
//	                           partitions it is missing from
//
// Every JSON answer carries "stale" and "age_seconds" beside the data, so
// old data is never mistaken for fresh.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", a.serveMetrics)
	mux.HandleFunc("GET /v1/health", a.serveHealth)
	mux.HandleFunc("GET /v1/groups", a.serveGroups)
	mux.HandleFunc("GET /v1/groups/{group}", a.serveGroup)
	mux.HandleFunc("GET /v1/partitions/failing", a.serveFailing)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("kobs agent: /metrics /v1/health /v1/groups /v1/groups/{group} /v1/partitions/failing\n"))
	})
	return mux
}

// freshness is the header of every JSON answer.
type freshness struct {
	Stale      bool      `json:"stale"`
	AgeSeconds float64   `json:"age_seconds"`
	AsOf       time.Time `json:"as_of"`
	LastError  string    `json:"last_error,omitempty"`
	Partial    bool      `json:"partial"`
}

func (a *Agent) fresh() (freshness, *View) {
	h := a.Health(time.Now())
	f := freshness{Stale: h.Stale, AgeSeconds: h.AgeSeconds, LastError: h.LastError, Partial: h.Partial}
	v := a.View()
	if v != nil {
		f.AsOf = v.Snapshot.Time
	}
	return f, v
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (a *Agent) serveHealth(w http.ResponseWriter, _ *http.Request) {
	h := a.Health(time.Now())
	code := http.StatusOK
	if h.Stale {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, h)
}

// GroupSummary is a group without its partitions, for /v1/groups.
type GroupSummary struct {
	Group         string           `json:"group"`
	State         string           `json:"state"`
	Protocol      string           `json:"protocol"`
	Members       int              `json:"members"`
	NoMembers     bool             `json:"no_members"`
	Status        Status           `json:"status"`
	TotalLag      int64            `json:"total_lag"`
	TopicLag      map[string]int64 `json:"topic_lag"`
	MaxLagSeconds *float64         `json:"max_lag_seconds"`
	NoCommit      int              `json:"partitions_without_committed_offset"`
	Err           string           `json:"error,omitempty"`
}

func (a *Agent) serveGroups(w http.ResponseWriter, _ *http.Request) {
	f, v := a.fresh()
	out := struct {
		freshness
		Groups []GroupSummary `json:"groups"`
	}{freshness: f, Groups: []GroupSummary{}}
	if v != nil {
		for _, name := range v.GroupNames {
			g := v.Groups[name]
			gs := GroupSummary{
				Group: g.Group, State: g.State, Protocol: g.Protocol, Members: g.Members, NoMembers: g.NoMembers,
				Status: g.Status, TotalLag: g.TotalLag, TopicLag: g.TopicLag, MaxLagSeconds: finite(g.MaxLagSeconds), Err: g.Err,
			}
			for i := range g.Partitions {
				if g.Partitions[i].NoCommit() {
					gs.NoCommit++
				}
			}
			out.Groups = append(out.Groups, gs)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *Agent) serveGroup(w http.ResponseWriter, r *http.Request) {
	f, v := a.fresh()
	name := r.PathValue("group")
	var g *GroupLag
	if v != nil {
		g = v.Groups[name]
	}
	if g == nil {
		writeJSON(w, http.StatusNotFound, struct {
			freshness
			Error string `json:"error"`
		}{f, "group " + strconv.Quote(name) + " not found"})
		return
	}
	// Not embedded: GroupLag's MarshalJSON would be promoted and drop
	// the freshness fields.
	writeJSON(w, http.StatusOK, struct {
		freshness
		Group *GroupLag `json:"group"`
	}{f, g})
}

func (a *Agent) serveFailing(w http.ResponseWriter, _ *http.Request) {
	f, v := a.fresh()
	out := struct {
		freshness
		Partitions  []FailingPartition          `json:"partitions"`
		ByBroker    map[string][]TopicPartition `json:"missing_by_broker"`
		Unreachable []int32                     `json:"unreachable_brokers"`
	}{freshness: f, Partitions: []FailingPartition{}, ByBroker: map[string][]TopicPartition{}, Unreachable: []int32{}}
	if v != nil {
		if v.Failing != nil {
			out.Partitions = v.Failing
		}
		for b, tps := range v.ByBroker {
			out.ByBroker[strconv.Itoa(int(b))] = tps
		}
		if v.Snapshot.Unreachable != nil {
			out.Unreachable = v.Snapshot.Unreachable
		}
	}
	writeJSON(w, http.StatusOK, out)
}
