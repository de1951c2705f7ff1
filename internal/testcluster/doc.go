// Package testcluster starts real kobs brokers on free loopback ports for
// tests: one in this process (Start) or as a `kobs broker` process
// (StartProcess), and clusters of N (StartCluster: processes that can be
// stopped, killed with SIGKILL, paused with SIGSTOP, resumed and restarted
// on the same ports and data; StartInProcess: brokers in this process).
//
// Cluster nodes get node ids 1..N, both process.roles, a generated
// cluster.id and a controller.quorum.voters naming each node's CONTROLLER
// listener. Ports: Kafka listeners bind :0 and are read back from the
// broker's ready line; controller ports have to be known to every node's
// config up front, so in-process clusters hand the bound listener to the
// broker (broker.Config.ControllerNetListener) and process clusters,
// which cannot, retry the start on fresh ports if a reserved port was
// taken before the process bound it.
//
// The kobs binary is built once per test process into one path per
// checkout (Binary), replaced atomically, so runs leave nothing behind.
package testcluster
