package metadata

import (
	"sync"
	"sync/atomic"
)

// Listener is told about every published image, in order, with the image it
// replaces (nil for the first). It runs on the publisher's goroutine: it
// must hand slow work (opening logs, starting fetchers) to its own
// goroutines or accept that it delays the next image.
type Listener func(prev, next *Image)

// Publisher holds the current image. Load is one atomic read; Publish is
// called by one writer (the controller's apply loop).
type Publisher struct {
	cur atomic.Pointer[Image]

	mu        sync.Mutex // serialises Publish and Subscribe
	listeners []Listener
}

// NewPublisher starts with initial as the current image.
func NewPublisher(initial *Image) *Publisher {
	p := &Publisher{}
	p.cur.Store(initial)
	return p
}

// Load returns the current image.
func (p *Publisher) Load() *Image { return p.cur.Load() }

// Subscribe adds l; it is called at once with (nil, current) so a new
// listener starts from the present state.
func (p *Publisher) Subscribe(l Listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.listeners = append(p.listeners, l)
	l(nil, p.cur.Load())
}

// Publish makes next the current image and tells the listeners.
func (p *Publisher) Publish(next *Image) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.cur.Swap(next)
	for _, l := range p.listeners {
		l(prev, next)
	}
}
