// Package clusternet is the node's side of the cluster network: a WireGuard
// mesh in which every node is a peer of every other, so that traffic between
// the cluster's networks never crosses the wire unencrypted.
//
// This package holds the parts that talk to the kernel and the rules that
// turn the cluster's view of its nodes into WireGuard peers:
//
//   - Link creates and configures the node's WireGuard interface (kernel
//     WireGuard, configured over netlink with wgctrl): its private key,
//     listen port, an MTU that leaves room for WireGuard's own headers on the
//     uplink, and the route that sends the cluster network into the mesh.
//     SetPeers replaces the peers with exactly those given, so whatever the
//     kernel held before (from an earlier run of the service) cannot linger.
//   - Peers computes the peers from the nodes the curator reports: every
//     other node that is UP and published a valid key, reached at its
//     external address, serving the prefixes it published. It is pure, so
//     the decisions are tested without a kernel.
//
// Only the cluster network (ClusterNetwork, where pod networks live) is
// routed into the mesh, not the nodes' external addresses, although those
// are in each peer's allowed IPs (for replies sourced from them). Routing
// node-to-node traffic between external addresses through the mesh would
// cut a rebooting node off its cluster: its WireGuard key lives on its
// encrypted data partition, which it can only unlock by asking a curator,
// whose replies would then be sent into a tunnel the node cannot open yet.
package clusternet
