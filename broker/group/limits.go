package group

import (
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// MaxStringLen is the longest string the __consumer_offsets records can
// hold: Kafka's GroupMetadataKey/Value and OffsetCommitKey/Value schemas
// prefix strings with an int16 length, so Kafka's own readers (and Burrow)
// cannot read anything longer. The wire protocol allows longer group ids
// (compact strings in flexible versions); the coordinator refuses them
// before anything is written, so nothing is acknowledged and then lost.
const MaxStringLen = math.MaxInt16

// memberIDSuffix is what newMemberID appends to the client or instance id.
const memberIDSuffix = len("-00000000-0000-0000-0000-000000000000")

// groupIDFits reports whether id can be stored; callers answer
// INVALID_GROUP_ID otherwise, as Kafka does for a group id it cannot use.
func groupIDFits(id string) bool { return len(id) <= MaxStringLen }

// joinFits checks the client-supplied strings a JoinGroup writes into the
// group's metadata record: protocol type and names, the group instance id,
// and the member id derived from the client or instance id.
func joinFits(req *kmsg.JoinGroupRequest, client Client) int16 {
	switch {
	case !groupIDFits(req.Group):
		return kerr.InvalidGroupID.Code
	case len(req.ProtocolType) > MaxStringLen,
		len(req.MemberID) > MaxStringLen,
		req.InstanceID != nil && len(*req.InstanceID)+memberIDSuffix > MaxStringLen,
		len(client.ID)+memberIDSuffix > MaxStringLen,
		len(client.Host) > MaxStringLen:
		return kerr.InvalidRequest.Code
	}
	for _, p := range req.Protocols {
		if len(p.Name) > MaxStringLen {
			return kerr.InvalidRequest.Code
		}
	}
	return 0
}
