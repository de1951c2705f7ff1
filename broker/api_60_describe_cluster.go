package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// DescribeCluster: v0-1
//
// Behavior:
//   - This broker, with the endpoint of the listener asked on, is the whole
//     cluster and its controller. EndpointType 2 (controllers, KIP-919) is
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
	resp.ControllerID = b.cfg.NodeID
	host, port := b.endpointFor(r.Listener)
	br := kmsg.NewDescribeClusterResponseBroker()
	br.NodeID, br.Host, br.Port = b.cfg.NodeID, host, port
	resp.Brokers = append(resp.Brokers, br)
	r.Respond(resp)
}
