package clusternet

import (
	"cmp"
	"encoding/base64"
	"net/netip"
	"slices"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"metropolis.dev/metropolis/node"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
)

// Peer is another node of the mesh.
type Peer struct {
	// NodeID of the peer, for logs.
	NodeID string
	// PublicKey is the peer's WireGuard key.
	PublicKey wgtypes.Key
	// Endpoint is where the peer's WireGuard listens.
	Endpoint netip.AddrPort
	// MeshAddress is the peer's own address in the mesh, invalid until
	// the curator assigned it one.
	MeshAddress netip.Addr
	// Prefixes are what the peer serves: traffic to them goes to it, and
	// traffic from them is accepted from it. They include its mesh
	// address.
	Prefixes []netip.Prefix
}

// Peers returns the peers of node self among nodes, as the curator reports
// them, sorted by node ID: every other node that is UP, has an external
// address and published a valid WireGuard key, listening on port. Of the
// prefixes a peer published, only those the curator allows are kept (within
// node.ClusterNetwork, or the peer's own external address); the curator
// checked them, and a node does not trust its view of the cluster further
// than it must.
func Peers(self string, nodes []*ipb.Node, port uint16) []Peer {
	var peers []Peer
	for _, n := range nodes {
		if n.Id == self || n.State != cpb.NodeState_NODE_STATE_UP {
			continue
		}
		addr, err := netip.ParseAddr(n.GetStatus().GetExternalAddress())
		if err != nil {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(n.GetClusternet().GetWireguardPubkey())
		if err != nil || len(raw) != wgtypes.KeyLen {
			continue
		}
		p := Peer{NodeID: n.Id, PublicKey: wgtypes.Key(raw), Endpoint: netip.AddrPortFrom(addr, port)}
		own := netip.PrefixFrom(addr, addr.BitLen())
		for _, pr := range n.GetClusternet().GetPrefixes() {
			prefix, err := netip.ParsePrefix(pr.GetCidr())
			if err != nil {
				continue
			}
			prefix = prefix.Masked()
			if prefix == own || (prefix.Bits() >= node.ClusterNetwork.Bits() && node.ClusterNetwork.Contains(prefix.Addr())) {
				p.Prefixes = append(p.Prefixes, prefix)
			}
		}
		if mesh, err := netip.ParseAddr(n.GetClusternet().GetMeshAddress()); err == nil && node.MeshAddresses.Contains(mesh) {
			p.MeshAddress = mesh
			p.Prefixes = append(p.Prefixes, netip.PrefixFrom(mesh, mesh.BitLen()))
		}
		peers = append(peers, p)
	}
	slices.SortFunc(peers, func(a, b Peer) int { return cmp.Compare(a.NodeID, b.NodeID) })
	return peers
}
