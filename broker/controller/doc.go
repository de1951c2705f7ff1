// Package controller is kobs's metadata quorum and controller: the KRaft
// part of a Kafka cluster, on hashicorp/raft.
//
// # The metadata log
//
// The voters of controller.quorum.voters form one raft group. Its log is
// durable in <log dir>/kobs-metadata/raft.db (hashicorp/raft-boltdb/v2, a
// bbolt file that also holds raft's term and vote and the cluster id) with
// raft snapshots beside it. Each log entry is a batch of records applied
// atomically (records.go):
//
//   - broker: a registration (id, incarnation, rack, endpoints). The broker
//     starts fenced; its epoch is the raft index of the entry.
//   - fence: fence or unfence a broker of a given epoch.
//   - topic, partition, config, removeTopic: a topic; a partition's whole
//     state (leader, leader epoch, partition epoch, replicas, ISR, adding and
//     removing replicas); one topic config override; a deletion.
//   - controller: written first by every new raft leader (as Kafka's
//     LeaderChangeMessage), so every image names the active controller.
//   - migrated: the one-time import of a single-node kobs-topics.json
//     (Bootstrap) happened.
//
// Records hold complete state rather than deltas so that applying one is an
// assignment: replaying a log always gives the image the leader had. The
// encoding is a version byte and JSON; metadata is small and rare next to
// produce traffic, and an operator can read a dumped entry.
//
// Every node applies every entry, in order, to its state (state.go): the
// next immutable metadata.Image is built copy-on-write (top-level maps
// copied, a topic only when a record changes it) and published on the
// node's metadata.Publisher. A snapshot (raft FSMSnapshot) is the whole
// state as JSON; a restart loads the newest one and replays only the
// entries after it. A record that does not fit the state, which only a bug
// can produce since the leader derived it from the same state, is skipped,
// logged and counted (KafkaController MetadataErrorCount); the rest of its
// entry applies, so all nodes stay identical.
//
// A metadata log that cannot be written (full disk, I/O error) is the
// store's to say (storeguard.go): hashicorp/raft steps its leader down on
// a failed append, so the change is answered KAFKA_STORAGE_ERROR naming
// the cause; in a one-voter quorum later writes are answered the same at
// once instead of timing out (with more voters, another one takes over). The failure and the recovery
// are logged once each (a summary every 30 s between), raft's own
// per-attempt lines go to DEBUG, and a lone voter waits 250 ms doubling
// to 5 s between appends, so it takes a few new terms a minute rather
// than eight a second and picks up within 5 s once space returns.
//
// # Decisions
//
// Only the active controller (the raft leader, once it has applied
// everything earlier leaders committed) decides, one operation at a time
// against its applied state (decide.go): replica placement on create
// (Kafka's rack-unaware round robin from a random start), leader election
// from the live ISR in replica order (unclean only with
// unclean.leader.election.enable, broker default or topic override),
// AlterPartition checked against leader epoch, partition epoch and
// liveness, fencing (the broker leaves each ISR it can leave without
// emptying it and loses its leaderships; a partition without a candidate
// keeps the fenced broker as last ISR member and goes offline), unfencing
// (offline partitions get leaders), preferred leader election and the
// auto.leader.rebalance.enable sweep, reassignment with Kafka's KIP-455
// bookkeeping, CreatePartitions, DeleteTopics and config overrides. The
// decisions become records; the other nodes only apply.
//
// Broker liveness is the active controller's memory, not the log: each
// broker heartbeats every broker.heartbeat.interval.ms with its epoch and
// the metadata offset it applied; the controller unfences a broker whose
// applied offset reached its own registration (it caught up) and fences
// one silent for broker.session.timeout.ms. A heartbeat that changes
// nothing is answered at once, without waiting for other decisions or a
// log append, and travels on its own controller-RPC connection: a burst of
// AlterPartition commits must not make a live broker look silent. The
// fencing check runs when the earliest session can expire. A new
// active controller gives every broker a full session, except the broker
// of the previous active controller (combined roles), whose session runs
// from this voter's last raft contact with it. A second process registering a node.id that
// a live process holds gets DUPLICATE_BROKER_REGISTRATION; the newcomer
// waits one session (its predecessor may just have died) and then
// reports the clash on Fatal, naming node.id.
//
// # The CONTROLLER listener and forwarding
//
// A voter's address in controller.quorum.voters is its CONTROLLER
// listener. It carries raft's NetworkTransport and a small controller RPC
// on the same port, told apart by a connection's first byte (raft's RPC
// types are 0-3, the controller RPC starts with 0xCB) (rpc.go). The RPC is
// length-prefixed JSON frames, one request and one response at a time per
// connection, with the caller's cluster.id checked on every request:
//
//   - cmd: a write (CreateTopics, DeleteTopics, CreatePartitions,
//     AlterConfigs, AlterPartition, ElectLeaders, reassignments,
//     registration, heartbeat, DescribeQuorum). Writes called on any node
//     go to the node raft names leader; a non-leader answers NOT_CONTROLLER
//     with the leader it knows, and the caller retries until its context
//     ends. The reply carries the metadata offset the change was committed
//     at, and the calling node waits to apply it before returning, so a
//     handler reads its own write from its own image.
//   - fetch: how broker-only nodes (process.roles=broker) follow the log.
//     They are not raft members: a raft non-voter needs a port the leader
//     can dial and a membership change for every broker that comes and
//     goes, while fetching (as Kafka's brokers fetch from the quorum) needs
//     only outbound connections and no change to the quorum. A voter
//     answers with the entries after the requested offset (long-polling up
//     to 500 ms) from the last 4096 it applied, or with its whole state
//     when the requester is further behind; the broker-only node applies
//     them with the same code as a voter. It keeps no copy on disk: after a
//     restart it fetches the state again.
//
// A single node is a one-voter quorum on the same code path (it may use an
// ephemeral loopback port: nobody else dials it).
//
// # Roles
//
// process.roles=controller makes a dedicated controller: a voter that
// registers no broker (Metadata never lists it) and is Ready once an
// active controller acknowledges its heartbeat, i.e. the quorum has
// formed. A broker-only node needs the voters' addresses: from
// controller.quorum.voters, or, without it, from
// controller.quorum.bootstrap.servers, which New asks in turn (a third
// controller RPC, "voters") until one answers; a bootstrap server of
// another cluster refuses it at once. The voter set itself is static
// (raft's configuration, bootstrapped from controller.quorum.voters).
//
// # Refused at start
//
// New and Start refuse, naming the key: a node with the controller role
// missing from controller.quorum.voters, a voter without it, duplicate or
// unparsable voters (ParseVoters), a data dir whose stored cluster id is
// not cluster.id, a restart whose voter list differs from the one the log
// was formed with, more than one voter or a broker-only node without a
// cluster.id, a node with no voters and no bootstrap servers. A node.id
// clash is reported on Fatal once the quorum answers.
//
// # Using it from a broker
//
//	cfg := brokerConfig.ControllerConfig(registry, logger) // broker/config.go
//	cfg.ClusterID = clusterIDFromMetaProperties            // when cluster.id is unset
//	ctl, err := controller.New(cfg, publisher)             // refuses misconfiguration
//	err = ctl.Start(metadata.Broker{ID: nodeID, Rack: rack, Endpoints: advertised})
//	// serve; watch ctl.Fatal() (node.id clash: stop the broker) and
//	// ctl.Ready() (registered and unfenced). After Ready, once:
//	specs, err := controller.ReadLegacyTopics(firstLogDir, nodeID)
//	err = ctl.Bootstrap(ctx, specs) // imports kobs-topics.json once per cluster
//	// handlers: ctl.CreateTopics / ValidateCreateTopics / DeleteTopics /
//	// CreatePartitions / AlterConfigs / ElectLeaders / AlterReassignments /
//	// ListReassignments / Quorum; replicas: ctl.AlterPartition with
//	// ctl.BrokerEpoch(); errors map with controller.KafkaError(err).Code.
//	defer ctl.Close() // controlled shutdown, then leadership transfer
//
// # Telemetry
//
// Nodes with the controller role register kafka.controller
// KafkaController gauges (ActiveControllerCount is 1 on the active one;
// the counts come from each node's own image, as KRaft standby
// controllers report them) and ControllerStats LeaderElectionRateAndTimeMs
// (a timer: one event per leader change, timed by its commit) and
// UncleanLeaderElectionsPerSec. Every node registers Kafka's
// kafka.server:type=raft-metrics bean (current-state, current-leader,
// current-vote, current-epoch, high-watermark, log-end-offset,
// log-end-epoch, commit-latency-avg/-max, append-records-rate,
// fetch-records-rate; rates and averages over Kafka's two 30 s samples;
// broker-only nodes report as "observer" with their applied offset) and
// kafka.server:type=MetadataLoader,name=CurrentControllerId, and Kafka's
// kafka.server:type=raft-channel-metrics bean (channel.go): the node's
// client side of the quorum, measured on the sockets and RPCs themselves
// (a voter's outbound raft RPCs, a broker-only node's log fetches):
// connection-count, connection-creation-total, connection-close-total,
// request-total, response-total, outgoing-byte-total and
// incoming-byte-total. Broker nodes
// kafka.server:type=broker-metadata-metrics (last-applied-record-offset,
// -timestamp from the entry's append time, -lag-ms, metadata load and apply
// error counts).
package controller
