package tracing

import (
	"context"
	"time"
)

// hookCore is what the producer and consumer hooks share: their options,
// the trace-event emitter (their own unless one was passed in), the
// sampler and the OpenTelemetry state.
type hookCore struct {
	cfg    cfg
	em     *Emitter
	ownEm  bool
	sample sampler
	otel   *otelState
}

func newHookCore(opts []Opt) (hookCore, error) {
	c, err := newCfg(opts)
	if err != nil {
		return hookCore{}, err
	}
	h := hookCore{cfg: c, sample: newSampler(c.sampleRate)}
	if h.otel, err = newOtel(&c); err != nil {
		return hookCore{}, err
	}
	if h.em = c.emitter; h.em == nil {
		if h.em, err = NewEmitter(opts...); err != nil {
			return hookCore{}, err
		}
		h.ownEm = true
	}
	return h, nil
}

// Stats returns the trace events' counters.
func (h *hookCore) Stats() Stats { return h.em.Stats() }

// Close flushes pending trace events and spans. Close the traced client
// first so its last acknowledgements and polls are recorded.
func (h *hookCore) Close() {
	if h.ownEm {
		h.em.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = h.otel.close(ctx)
}
