// Package roleserve is the node's Role Server: it runs what a node does as
// a member of its cluster, once the cluster manager (package cluster) has
// enrolled it, and adapts that to the roles the cluster assigns.
//
// The cluster manager hands over the result of enrolment through one of
// ProvideBootstrapData (this node creates the cluster), ProvideRegisterData
// (it just registered) or ProvideJoinData (it rejoins after a reboot). From
// then on, everything is driven by event values, each published by one
// worker and read by the others:
//
//   - CuratorConnection: the node's credentials and a gRPC connection to
//     the curator leader (metropolis:///control), set by the connection
//     worker once the node has credentials.
//   - LocalRoles: the node's roles, set by rolefetch from the copy
//     persisted on the data partition and then from the curator.
//   - localControlPlane: whether this node runs consensus and a curator,
//     set by the controlplane worker.
//
// Workers, each a supervisor runnable below the Role Server:
//
//   - controlplane runs etcd and the curator when the node bootstraps the
//     cluster or holds the ConsensusMember role, and restarts them only
//     when that role is gained or lost.
//   - statuspush reports the node's address, curator, version and boot to
//     the curator whenever any of them changes.
//   - heartbeat keeps the curator's view of the node's health fresh.
//   - rolefetch follows the node's record in the cluster and persists its
//     roles, so that a consensus member can start etcd after a reboot even
//     while no curator is reachable, which is how a cluster whose nodes
//     all rebooted comes back.
//   - nodemgmt serves NodeManagement (logs, reboot) with the node's
//     credentials on every member node, so that operators reach each node
//     directly, authenticated against the cluster's CA.
//   - directory follows all nodes: it hands their addresses to the node's
//     resolver (package nodenames), so node IDs work as host names, and
//     keeps the cluster directory on the ESP up to date with the nodes
//     running curators, which the cluster manager rejoins through after
//     a reboot.
//
// The workers never call each other; a worker whose inputs change in a way
// it cannot adapt to returns an error and is restarted by the supervisor
// with its latest inputs.
package roleserve
