package group

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestJoinFitsTheOffsetsLog(t *testing.T) {
	ok := func() *kmsg.JoinGroupRequest {
		r := kmsg.NewPtrJoinGroupRequest()
		r.Group, r.ProtocolType = "g", "consumer"
		r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
		return r
	}
	client := Client{ID: "c", Host: "/127.0.0.1"}
	require.Zero(t, joinFits(ok(), client))
	long := strings.Repeat("x", MaxStringLen+1)

	r := ok()
	r.Group = long
	require.Equal(t, kerr.InvalidGroupID.Code, joinFits(r, client))
	r = ok()
	r.ProtocolType = long
	require.Equal(t, kerr.InvalidRequest.Code, joinFits(r, client))
	r = ok()
	r.Protocols[0].Name = long
	require.Equal(t, kerr.InvalidRequest.Code, joinFits(r, client))
	r = ok()
	id := strings.Repeat("i", MaxStringLen-10) // fits alone, not with the member id suffix
	r.InstanceID = &id
	require.Equal(t, kerr.InvalidRequest.Code, joinFits(r, client))
	require.Equal(t, kerr.InvalidRequest.Code, joinFits(ok(), Client{ID: id}))

	// The longest group id that fits is accepted.
	r = ok()
	r.Group = long[:MaxStringLen]
	require.Zero(t, joinFits(r, client))
	require.Len(t, newMemberID(strings.Repeat("c", MaxStringLen-memberIDSuffix), nil), MaxStringLen)
}
