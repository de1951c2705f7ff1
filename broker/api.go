package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// apiTable is the single source of ApiVersions: every key kobs serves with
// the version range it implements, and its handler. Versions reflect what
// the handlers truly honour (see each api_*.go header), and the minimums
// keep the old versions that kafka-python and sarama still send.
var apiTable = []struct {
	key      kmsg.Key
	min, max int16
	handle   func(*Broker, *wire.Request)
}{
	{kmsg.Produce, 3, 9, (*Broker).handleProduce},
	{kmsg.Fetch, 4, 12, (*Broker).handleFetch},
	{kmsg.ListOffsets, 0, 7, (*Broker).handleListOffsets},
	{kmsg.Metadata, 0, 12, (*Broker).handleMetadata},
	{kmsg.OffsetCommit, 0, 8, (*Broker).handleOffsetCommit},
	{kmsg.OffsetFetch, 0, 8, (*Broker).handleOffsetFetch},
	{kmsg.FindCoordinator, 0, 4, (*Broker).handleFindCoordinator},
	{kmsg.JoinGroup, 0, 9, (*Broker).handleJoinGroup},
	{kmsg.Heartbeat, 0, 4, (*Broker).handleHeartbeat},
	{kmsg.LeaveGroup, 0, 5, (*Broker).handleLeaveGroup},
	{kmsg.SyncGroup, 0, 5, (*Broker).handleSyncGroup},
	{kmsg.DescribeGroups, 0, 5, (*Broker).handleDescribeGroups},
	{kmsg.ListGroups, 0, 4, (*Broker).handleListGroups},
	{kmsg.DeleteGroups, 0, 2, (*Broker).handleDeleteGroups},
	{kmsg.OffsetDelete, 0, 0, (*Broker).handleOffsetDelete},
	{kmsg.ApiVersions, 0, 3, nil}, // answered by wire from this table
	{kmsg.CreateTopics, 0, 7, (*Broker).handleCreateTopics},
	{kmsg.DeleteTopics, 0, 6, (*Broker).handleDeleteTopics},
	{kmsg.DeleteRecords, 0, 2, (*Broker).handleDeleteRecords},
	{kmsg.OffsetForLeaderEpoch, 0, 4, (*Broker).handleOffsetForLeaderEpoch},
	{kmsg.DescribeConfigs, 0, 4, (*Broker).handleDescribeConfigs},
	{kmsg.AlterConfigs, 0, 2, (*Broker).handleAlterConfigs},
	{kmsg.DescribeLogDirs, 0, 4, (*Broker).handleDescribeLogDirs},
	{kmsg.CreatePartitions, 0, 3, (*Broker).handleCreatePartitions},
	{kmsg.IncrementalAlterConfigs, 0, 1, (*Broker).handleIncrementalAlterConfigs},
	{kmsg.DescribeCluster, 0, 1, (*Broker).handleDescribeCluster},
	{kmsg.InitProducerID, 0, 4, (*Broker).handleInitProducerID},
	{kmsg.DescribeProducers, 0, 0, (*Broker).handleDescribeProducers},
	{kmsg.ElectLeaders, 0, 2, (*Broker).handleElectLeaders},
	{kmsg.AlterPartitionAssignments, 0, 1, (*Broker).handleAlterPartitionReassignments},
	{kmsg.ListPartitionReassignments, 0, 0, (*Broker).handleListPartitionReassignments},
	{kmsg.DescribeQuorum, 0, 2, (*Broker).handleDescribeQuorum},
}

func apiVersions() []kmsg.ApiVersionsResponseApiKey {
	out := make([]kmsg.ApiVersionsResponseApiKey, 0, len(apiTable))
	for _, a := range apiTable {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = a.key.Int16(), a.min, a.max
		out = append(out, k)
	}
	return out
}

var handlers = func() map[int16]func(*Broker, *wire.Request) {
	m := map[int16]func(*Broker, *wire.Request){}
	for _, a := range apiTable {
		if a.handle != nil {
			m[a.key.Int16()] = a.handle
		}
	}
	return m
}()

// Handle implements wire.Handler. wire only passes keys and versions from
// apiTable, so a missing handler is a programming error.
func (b *Broker) Handle(r *wire.Request) {
	h, ok := handlers[r.Header.Key]
	if !ok {
		r.CloseConn(fmt.Errorf("no handler for api key %d", r.Header.Key))
		return
	}
	h(b, r)
}

// respond sets the response version to the request's and sends it.
func respond(r *wire.Request, resp kmsg.Response) {
	resp.SetVersion(r.Header.Version)
	r.Respond(resp)
}

func strp(s string) *string { return &s }
