// Package testcluster starts real kobs brokers on free loopback ports for
// tests: one in this process (Start) or as a `kobs broker` process
// (StartProcess), and clusters of N (StartCluster: processes that can be
// stopped, killed with SIGKILL, paused with SIGSTOP, resumed and restarted
// on the same ports and data; StartInProcess: brokers in this process).
//
// Cluster brokers get node ids 1..N and, by default, both process.roles;
// with DedicatedControllers(k) the quorum is k process.roles=controller
// processes (node ids ControllerIDBase+1..k, ready on their "kobs
// controller ready" line) and the brokers are broker-only, learning the
// voters from controller.quorum.bootstrap.servers. Every node gets a
// generated cluster.id; the voters get a controller.quorum.voters naming
// each voter's CONTROLLER listener. Ports: Kafka listeners bind :0 and are read back from the
// broker's ready line; controller ports have to be known to every node's
// config up front, so in-process clusters hand the bound listener to the
// broker (broker.Config.ControllerNetListener) and process clusters,
// which cannot, retry the start on fresh ports if a reserved port was
// taken before the process bound it.
//
// The kobs binary is built once per test process into one path per
// checkout (Binary), replaced atomically, so runs leave nothing behind.
package testcluster
