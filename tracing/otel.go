package tracing

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

const instrumentationName = "github.com/kobs-dev/kobs/tracing"

// otelState is the OpenTelemetry side of a hook: nil tracer means no spans.
type otelState struct {
	tracer   trace.Tracer
	shutdown func(context.Context) error // set when the hook built the provider
}

func newOtel(c *cfg) (*otelState, error) {
	switch {
	case c.tp != nil:
		return &otelState{tracer: c.tp.Tracer(instrumentationName)}, nil
	case c.otlpEndpoint != "":
		var opt otlptracehttp.Option
		if strings.Contains(c.otlpEndpoint, "://") {
			opt = otlptracehttp.WithEndpointURL(c.otlpEndpoint)
		} else {
			opt = otlptracehttp.WithEndpoint(c.otlpEndpoint)
		}
		opts := []otlptracehttp.Option{opt}
		if !strings.HasPrefix(c.otlpEndpoint, "https://") {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		exp, err := otlptracehttp.New(context.Background(), opts...)
		if err != nil {
			return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", c.otlpEndpoint, err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
		return &otelState{tracer: tp.Tracer(instrumentationName), shutdown: tp.Shutdown}, nil
	}
	return &otelState{}, nil
}

func (o *otelState) close(ctx context.Context) error {
	if o.shutdown != nil {
		return o.shutdown(ctx)
	}
	return nil
}

// remoteParent returns ctx carrying the span context of a traceparent, so a
// span started from it shares the traceparent's trace id.
func remoteParent(ctx context.Context, traceID, spanID string) context.Context {
	var tid trace.TraceID
	var sid trace.SpanID
	if _, err := hex.Decode(tid[:], []byte(traceID)); err != nil {
		return ctx
	}
	if _, err := hex.Decode(sid[:], []byte(spanID)); err != nil {
		return ctx
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// recordAttrs are the OpenTelemetry messaging semantic-convention attributes
// of a record.
func recordAttrs(r *kgo.Record, msgID string) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("messaging.system", "kafka"),
		attribute.String("messaging.destination.name", r.Topic),
		attribute.Int64("messaging.destination.partition.id", int64(r.Partition)),
		attribute.Int64("messaging.kafka.offset", r.Offset),
		attribute.String("messaging.message.id", msgID),
		attribute.Int("messaging.message.body.size", len(r.Value)),
	}
}

func groupAttr(g string) attribute.KeyValue {
	return attribute.String("messaging.consumer.group.name", g)
}
