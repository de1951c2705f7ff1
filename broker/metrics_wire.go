package broker

import (
	"github.com/kobs-dev/kobs/broker/telemetry"
)

// registerWireMetrics exports the state of the Kafka listeners
// (broker/wire): per listener, Kafka's socket-server-metrics bean
// (kafka.server:type=socket-server-metrics,listener=L,networkProcessor=0;
// kobs multiplexes connections on goroutines, so there is one "processor"
// per listener), and the request memory pool of queued.max.request.bytes.
//
// Next to Kafka's attributes the bean carries kobs's, named in the same
// style, so that nothing the listener drops goes unseen: listener-serving
// (1 while the accept loop accepts, 0 while it backs off on errors such as
// "too many open files" or after it stopped), accept-error-total and one
// -total per reason a connection was closed by the broker.
func (b *Broker) registerWireMetrics() {
	if b.metrics == nil {
		return
	}
	for _, name := range b.srv.Listeners() {
		b.reg.KafkaMetrics(telemetry.Name("kafka.server", "socket-server-metrics", "",
			"listener", name, "networkProcessor", "0"), func() []telemetry.Attribute {
			st, _ := b.srv.ListenerStats(name)
			f := func(n string, v int64) telemetry.Attribute {
				// Kafka Metrics values are doubles over JMX.
				return telemetry.Attribute{Name: n, Value: telemetry.Float64Value(float64(v))}
			}
			return []telemetry.Attribute{
				f("connection-count", st.Connections),
				f("connection-creation-total", st.Created),
				f("connection-close-total", st.Closed),
				f("incoming-byte-total", st.BytesIn),
				f("outgoing-byte-total", st.BytesOut),
				f("request-total", st.Requests),
				f("response-total", st.Responses),
				f("listener-serving", map[bool]int64{true: 1}[st.Serving]),
				f("accept-error-total", st.AcceptErrors),
				f("connection-rejected-per-ip-total", st.RejectedPerIP),
				f("connection-idle-close-total", st.IdleClosed),
				f("request-read-timeout-total", st.ReadTimeouts),
				f("response-write-timeout-total", st.WriteTimeouts),
			}
		})
	}
	b.reg.Gauge(telemetry.Name("kafka.network", "SocketServer", "MemoryPoolAvailable"), func() int64 {
		avail, _ := b.srv.MemoryPool()
		return avail
	})
	b.reg.Gauge(telemetry.Name("kafka.network", "SocketServer", "MemoryPoolUsed"), func() int64 {
		_, used := b.srv.MemoryPool()
		return used
	})
}

// ListenersServing reports whether every Kafka listener accepts connections
// (false while one backs off on accept errors or has stopped).
func (b *Broker) ListenersServing() bool { return b.srv != nil && b.srv.Serving() }

// ListenerHealth is one Kafka listener's state for a health check.
type ListenerHealth struct {
	Name            string `json:"name"`
	Serving         bool   `json:"serving"`
	Connections     int64  `json:"connections"`
	AcceptErrors    int64  `json:"accept_errors"`
	LastAcceptError string `json:"last_accept_error,omitempty"`
}

// ListenerHealth returns the state of every Kafka listener, in listeners order.
func (b *Broker) ListenerHealth() []ListenerHealth {
	if b.srv == nil {
		return nil
	}
	var out []ListenerHealth
	for _, name := range b.srv.Listeners() {
		st, _ := b.srv.ListenerStats(name)
		out = append(out, ListenerHealth{Name: name, Serving: st.Serving, Connections: st.Connections,
			AcceptErrors: st.AcceptErrors, LastAcceptError: st.LastAcceptError})
	}
	return out
}
