package clusternet

import (
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"metropolis.dev/osbase/test/ktest"
)

// TestKernel runs TestLink in a VM on the node's kernel, which has
// WireGuard as a module.
func TestKernel(t *testing.T) {
	ktest.Run(t, ktest.Options{
		Run:     "^TestLink$",
		Modules: []string{"wireguard"},
	})
}

// TestLink sets the interface up as the node would, twice (as a restarted
// service does), and checks what the kernel holds: key, port, MTU, the
// route into the mesh and exactly the peers last given.
func TestLink(t *testing.T) {
	if os.Getenv("IN_KTEST") == "" {
		t.Skip("changes the kernel's network configuration; runs in a VM (TestKernel)")
	}
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	cfg := LinkConfig{PrivateKey: key, Port: 7838, UplinkMTU: 1500}
	for range 2 {
		l, err := SetUp(cfg)
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	link, err := netlink.LinkByName(InterfaceName)
	if err != nil {
		t.Fatal(err)
	}
	if mtu := link.Attrs().MTU; mtu != 1420 {
		t.Errorf("MTU %d, want 1420", mtu)
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		t.Error("interface is not up")
	}
	routes, err := netlink.RouteList(link, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(routes, func(r netlink.Route) bool { return r.Dst != nil && r.Dst.String() == ClusterNetwork.String() }) {
		t.Errorf("no route for %s through %s: %v", ClusterNetwork, InterfaceName, routes)
	}

	l, err := SetUp(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peer := func() Peer {
		k, err := wgtypes.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		return Peer{PublicKey: k.PublicKey()}
	}
	a, b := peer(), peer()
	a.Endpoint, a.Prefixes = netip.MustParseAddrPort("10.1.0.3:7838"), []netip.Prefix{netip.MustParsePrefix("10.1.0.3/32"), netip.MustParsePrefix("10.192.0.0/24")}
	b.Endpoint, b.Prefixes = netip.MustParseAddrPort("10.1.0.4:7838"), []netip.Prefix{netip.MustParsePrefix("10.1.0.4/32")}
	for _, peers := range [][]Peer{{a, b}, {b}} {
		if err := l.SetPeers(peers); err != nil {
			t.Fatal(err)
		}
		wg, err := wgctrl.New()
		if err != nil {
			t.Fatal(err)
		}
		dev, err := wg.Device(InterfaceName)
		wg.Close()
		if err != nil {
			t.Fatal(err)
		}
		if dev.PrivateKey != key || dev.ListenPort != 7838 {
			t.Errorf("device has key %v and port %d, want the node's key and 7838", dev.PublicKey, dev.ListenPort)
		}
		if len(dev.Peers) != len(peers) {
			t.Fatalf("device has %d peers, want %d", len(dev.Peers), len(peers))
		}
		for _, want := range peers {
			i := slices.IndexFunc(dev.Peers, func(p wgtypes.Peer) bool { return p.PublicKey == want.PublicKey })
			if i < 0 {
				t.Fatalf("peer %v missing", want.PublicKey)
			}
			got := dev.Peers[i]
			if got.Endpoint.String() != want.Endpoint.String() {
				t.Errorf("peer endpoint %v, want %v", got.Endpoint, want.Endpoint)
			}
			var allowed []string
			for _, ip := range got.AllowedIPs {
				allowed = append(allowed, ip.String())
			}
			var wantAllowed []string
			for _, p := range want.Prefixes {
				wantAllowed = append(wantAllowed, p.String())
			}
			slices.Sort(allowed)
			slices.Sort(wantAllowed)
			if !slices.Equal(allowed, wantAllowed) {
				t.Errorf("peer allowed IPs %v, want %v", allowed, wantAllowed)
			}
		}
	}
	if _, err := SetUp(LinkConfig{Name: "lo", PrivateKey: key, Port: 7838, UplinkMTU: 1500}); err == nil {
		t.Error("SetUp took over lo, which is no WireGuard interface")
	}
}
