package clusternet

import (
	"cmp"
	"encoding/base64"
	"net/netip"
	"slices"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

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
	// Prefixes are what the peer serves: traffic to them goes to it, and
	// traffic from them is accepted from it.
	Prefixes []netip.Prefix
}

// Peers returns the peers of node self among nodes, as the curator reports
// them, sorted by node ID: every other node that is UP, has an external
// address and published a valid WireGuard key, listening on port. Prefixes
// that do not parse are left out; the curator validated them when the node
// published them.
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
		for _, pr := range n.GetClusternet().GetPrefixes() {
			if prefix, err := netip.ParsePrefix(pr.GetCidr()); err == nil {
				p.Prefixes = append(p.Prefixes, prefix.Masked())
			}
		}
		peers = append(peers, p)
	}
	slices.SortFunc(peers, func(a, b Peer) int { return cmp.Compare(a.NodeID, b.NodeID) })
	return peers
}
