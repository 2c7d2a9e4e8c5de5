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

func node(id string, state cpb.NodeState, addr string, key string, prefixes ...string) *ipb.Node {
	n := &ipb.Node{Id: id, State: state, Status: &cpb.NodeStatus{ExternalAddress: addr}}
	if key != "" || len(prefixes) > 0 {
		n.Clusternet = &cpb.NodeClusterNetworking{WireguardPubkey: key}
		for _, p := range prefixes {
			n.Clusternet.Prefixes = append(n.Clusternet.Prefixes, &cpb.NodeClusterNetworking_Prefix{Cidr: p})
		}
	}
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
		{"only self", []*ipb.Node{node("self", up, "10.1.0.2", ka, "10.1.0.2/32")}, nil},
		{
			"two peers, sorted, prefixes canonical",
			[]*ipb.Node{
				node("self", up, "10.1.0.2", ka),
				node("z", up, "10.1.0.4", kb, "10.1.0.4/32", "10.192.1.7/24"),
				node("m", up, "10.1.0.3", ka, "10.1.0.3/32"),
			},
			[]Peer{
				{NodeID: "m", PublicKey: a, Endpoint: netip.MustParseAddrPort("10.1.0.3:7838"), Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.0.3/32")}},
				{NodeID: "z", PublicKey: b, Endpoint: netip.MustParseAddrPort("10.1.0.4:7838"), Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.0.4/32"), netip.MustParsePrefix("10.192.1.0/24")}},
			},
		},
		{"not UP", []*ipb.Node{node("n", cpb.NodeState_NODE_STATE_DECOMMISSIONED, "10.1.0.3", ka)}, nil},
		{"no address", []*ipb.Node{node("n", up, "", ka)}, nil},
		{"no key", []*ipb.Node{node("n", up, "10.1.0.3", "")}, nil},
		{"short key", []*ipb.Node{node("n", up, "10.1.0.3", base64.StdEncoding.EncodeToString([]byte("short")))}, nil},
		{"bad prefix left out", []*ipb.Node{node("n", up, "10.1.0.3", ka, "nonsense", "10.1.0.3/32")},
			[]Peer{{NodeID: "n", PublicKey: a, Endpoint: netip.MustParseAddrPort("10.1.0.3:7838"), Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.0.3/32")}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Peers("self", tc.nodes, 7838)
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("peers differ (-want +got):\n%s", diff)
			}
		})
	}
}
