package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// DescribeCluster: v0-1
//
// Behavior:
//   - The unfenced brokers and the controller of the current metadata
//     image, each with its endpoint on the listener asked on. EndpointType 2 (controllers, KIP-919) is
//     refused with UNSUPPORTED_ENDPOINT_TYPE: kobs has no separate
//     controller listener yet.
//
// Version notes: v1 endpoint type.
func (b *Broker) handleDescribeCluster(r *wire.Request) {
	req := r.Msg.(*kmsg.DescribeClusterRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.EndpointType = req.EndpointType
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		r.Respond(resp)
		return
	}
	resp.ClusterID = b.clusterID
	img := b.pub.Load()
	resp.ControllerID = clientControllerID(img)
	for _, id := range img.BrokerIDs() {
		mb := img.Brokers[id]
		host, port, ok := b.brokerEndpoint(mb, r.Listener)
		if mb.Fenced || !ok {
			continue
		}
		br := kmsg.NewDescribeClusterResponseBroker()
		br.NodeID, br.Host, br.Port = id, host, port
		if mb.Rack != "" {
			br.Rack = strp(mb.Rack)
		}
		resp.Brokers = append(resp.Brokers, br)
	}
	r.Respond(resp)
}
