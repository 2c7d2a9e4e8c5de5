package node

import "net/netip"

// ClusterNetwork is the range of the cluster's own addresses: the nodes'
// mesh addresses and, later, the pod networks. It is routed into the
// WireGuard mesh on every node, and traffic to it never leaves a node
// unencrypted.
var ClusterNetwork = netip.MustParsePrefix("10.192.0.0/11")

// MeshAddresses is the part of ClusterNetwork the curator assigns nodes'
// own mesh addresses from, one /32 each. Nodes may not publish prefixes
// inside it, so pod networks are allocated from the rest of ClusterNetwork.
var MeshAddresses = netip.MustParsePrefix("10.223.0.0/16")
