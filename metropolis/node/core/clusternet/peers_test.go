package clusternet

import (
	"encoding/base64"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
)

func testKey(t *testing.T) wgtypes.Key {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey()
}

func curatorNode(id string, state cpb.NodeState, addr string, key string, prefixes ...string) *ipb.Node {
	n := &ipb.Node{Id: id, State: state, Status: &cpb.NodeStatus{ExternalAddress: addr}}
	if key != "" || len(prefixes) > 0 {
		n.Clusternet = &cpb.NodeClusterNetworking{WireguardPubkey: key}
		for _, p := range prefixes {
			n.Clusternet.Prefixes = append(n.Clusternet.Prefixes, &cpb.NodeClusterNetworking_Prefix{Cidr: p})
		}
	}
	return n
}

func withMeshAddress(n *ipb.Node, addr string) *ipb.Node {
	n.Clusternet.MeshAddress = addr
	return n
}

func TestPeers(t *testing.T) {
	a, b := testKey(t), testKey(t)
	ka, kb := base64.StdEncoding.EncodeToString(a[:]), base64.StdEncoding.EncodeToString(b[:])
	up := cpb.NodeState_NODE_STATE_UP
	for _, tc := range []struct {
		name  string
		nodes []*ipb.Node
		want  []Peer
	}{
		{"only self", []*ipb.Node{curatorNode("self", up, "10.1.0.2", ka, "10.1.0.2/32")}, nil},
		{
			"two peers, sorted, prefixes canonical",
			[]*ipb.Node{
				curatorNode("self", up, "10.1.0.2", ka),
				curatorNode("z", up, "10.1.0.4", kb, "10.1.0.4/32", "10.192.1.7/24"),
				curatorNode("m", up, "10.1.0.3", ka, "10.1.0.3/32"),
			},
			[]Peer{
				{NodeID: "m", PublicKey: a, Endpoint: netip.MustParseAddrPort("10.1.0.3:7838"), Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.0.3/32")}},
				{NodeID: "z", PublicKey: b, Endpoint: netip.MustParseAddrPort("10.1.0.4:7838"), Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.0.4/32"), netip.MustParsePrefix("10.192.1.0/24")}},
			},
		},
		{"not UP", []*ipb.Node{curatorNode("n", cpb.NodeState_NODE_STATE_DECOMMISSIONED, "10.1.0.3", ka)}, nil},
		{"no address", []*ipb.Node{curatorNode("n", up, "", ka)}, nil},
		{"no key", []*ipb.Node{curatorNode("n", up, "10.1.0.3", "")}, nil},
		{"short key", []*ipb.Node{curatorNode("n", up, "10.1.0.3", base64.StdEncoding.EncodeToString([]byte("short")))}, nil},
		{"bad prefix left out", []*ipb.Node{curatorNode("n", up, "10.1.0.3", ka, "nonsense", "10.1.0.3/32")},
			[]Peer{{NodeID: "n", PublicKey: a, Endpoint: netip.MustParseAddrPort("10.1.0.3:7838"), Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.0.3/32")}}}},
		{"prefixes outside the cluster network and of other nodes left out", []*ipb.Node{curatorNode("n", up, "10.1.0.3", ka, "0.0.0.0/0", "10.1.0.4/32", "10.0.0.0/8", "10.192.4.0/24")},
			[]Peer{{NodeID: "n", PublicKey: a, Endpoint: netip.MustParseAddrPort("10.1.0.3:7838"), Prefixes: []netip.Prefix{netip.MustParsePrefix("10.192.4.0/24")}}}},
		{"mesh address", []*ipb.Node{withMeshAddress(curatorNode("n", up, "10.1.0.3", ka, "10.1.0.3/32"), "10.223.0.7")},
			[]Peer{{NodeID: "n", PublicKey: a, Endpoint: netip.MustParseAddrPort("10.1.0.3:7838"), MeshAddress: netip.MustParseAddr("10.223.0.7"),
				Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.0.3/32"), netip.MustParsePrefix("10.223.0.7/32")}}}},
		{"mesh address outside the mesh range left out", []*ipb.Node{withMeshAddress(curatorNode("n", up, "10.1.0.3", ka), "10.1.0.9")},
			[]Peer{{NodeID: "n", PublicKey: a, Endpoint: netip.MustParseAddrPort("10.1.0.3:7838")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Peers("self", tc.nodes, 7838)
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("peers differ (-want +got):\n%s", diff)
			}
		})
	}
}
