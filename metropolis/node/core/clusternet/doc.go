// Package clusternet is the node's side of the cluster network: a WireGuard
// mesh in which every node is a peer of every other, so that traffic between
// the cluster's own addresses never crosses the wire unencrypted.
//
// Service runs it, once the node is a member of its cluster (the Role
// Server's clusternet worker):
//
//   - It keeps the node's WireGuard key on the encrypted data partition,
//     creating it on the first run, so that the node keeps its identity in
//     the mesh across reboots and nobody without the partition's key can
//     take it.
//   - It publishes the public key and the node's external address through
//     the curator (UpdateNodeClusterNetworking), again whenever the address
//     changes. The curator checks what nodes publish, and answers with the
//     node's mesh address: one address of node.MeshAddresses, assigned on
//     the first publication and kept until the node is deleted. The curator
//     assigns these addresses, rather than nodes choosing them, so that two
//     nodes never claim the same one.
//   - It follows all nodes and configures the other UP nodes as peers
//     (Peers), removing those that are deleted or decommissioned.
//   - It receives the probe traffic of NodeManagement.ProbePeer (netprobe)
//     from peers.
//
// Link creates and configures the WireGuard interface (kernel WireGuard,
// configured over netlink with wgctrl): its private key, listen port, an MTU
// that leaves room for WireGuard's own headers on the uplink, the node's
// mesh address, and the route that sends node.ClusterNetwork into the mesh.
// SetPeers replaces the peers with exactly those given, so whatever the
// kernel held before (from an earlier run of the service) cannot linger.
// Peers are given a persistent keepalive, which makes the kernel shake hands
// with them at once: the mesh is ready before anything uses it, and its
// state shows in GetMeshStatus.
//
// ApplyFirewall adds nftables rules that drop packets to the cluster network
// leaving through any other interface, so that no route, however it came
// about, can send cluster traffic out in plaintext.
//
// Only the cluster network is routed into the mesh, not the nodes' external
// addresses, although those are in each peer's allowed IPs (for replies
// sourced from them). Routing node-to-node traffic between external
// addresses through the mesh would cut a rebooting node off its cluster: its
// WireGuard key lives on its encrypted data partition, which it can only
// unlock by asking a curator, whose replies would then be sent into a tunnel
// the node cannot open yet. The cluster's own control traffic (curator,
// consensus, node management) is protected by mutual TLS instead.
package clusternet
