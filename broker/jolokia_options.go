package broker

import "github.com/kobs-dev/kobs/exporters/jolokia"

// jolokiaOptions turns the kobs.jolokia.* keys into the agent's options.
func (b *Broker) jolokiaOptions() []jolokia.Option {
	proto := jolokia.Protocol2
	if b.cfg.JolokiaProtocol == 1 {
		proto = jolokia.Protocol1
	}
	return []jolokia.Option{
		jolokia.WithProtocol(proto),
		jolokia.WithLimits(jolokia.Limits{
			MaxDepth:          b.cfg.JolokiaMaxDepth,
			MaxCollectionSize: b.cfg.JolokiaMaxCollectionSize,
			MaxObjects:        b.cfg.JolokiaMaxObjects,
			MaxResponseBytes:  b.cfg.JolokiaMaxResponseBytes,
		}),
	}
}
