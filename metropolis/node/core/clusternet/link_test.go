package clusternet

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"metropolis.dev/metropolis/node"
	"metropolis.dev/osbase/test/ktest"
)

// TestKernel runs TestLink and TestFirewall in a VM on the node's kernel, which has
// WireGuard as a module.
func TestKernel(t *testing.T) {
	ktest.Run(t, ktest.Options{
		Run:     "^Test(Link|Firewall)$",
		Modules: []string{"wireguard", "veth", "nf_tables"},
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
	if !slices.ContainsFunc(routes, func(r netlink.Route) bool { return r.Dst != nil && r.Dst.String() == node.ClusterNetwork.String() }) {
		t.Errorf("no route for %s through %s: %v", node.ClusterNetwork, InterfaceName, routes)
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

	// The mesh address replaces any other and becomes the source of
	// traffic into the mesh.
	for _, addr := range []string{"10.223.0.5", "10.223.0.5", "10.223.0.6"} {
		if err := l.SetAddress(netip.MustParseAddr(addr)); err != nil {
			t.Fatalf("SetAddress(%s): %v", addr, err)
		}
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0].IPNet.String() != "10.223.0.6/32" {
		t.Errorf("addresses %v, want only 10.223.0.6/32", addrs)
	}
	got, err := netlink.RouteGet(net.ParseIP("10.192.7.1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].LinkIndex != link.Attrs().Index || !got[0].Src.Equal(net.ParseIP("10.223.0.6")) {
		t.Errorf("route to 10.192.7.1 is %v, want through %s from 10.223.0.6", got, InterfaceName)
	}
	if l.route != node.ClusterNetwork {
		t.Errorf("link routes %s, want %s", l.route, node.ClusterNetwork)
	}
	routes, err = netlink.RouteList(link, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst != nil && r.Dst.String() == node.ClusterNetwork.String() && r.Protocol != RouteProtocol {
			t.Errorf("route protocol %d, want %d", r.Protocol, RouteProtocol)
		}
	}
}

// TestFirewall checks that, with the mesh's firewall applied, traffic to
// the cluster network cannot leave through another interface, even where a
// route sends it there, and still leaves through the mesh's.
func TestFirewall(t *testing.T) {
	if os.Getenv("IN_KTEST") == "" {
		t.Skip("changes the kernel's network configuration; runs in a VM (TestKernel)")
	}
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SetUp(LinkConfig{Name: "mesh0", PrivateKey: key, Port: 7900, UplinkMTU: 1500}); err != nil {
		t.Fatal(err)
	}
	uplink := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink"}, PeerName: "uplink-peer"}
	if err := netlink.LinkAdd(uplink); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"uplink", "uplink-peer"} {
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		if name == "uplink" {
			if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("10.1.0.2"), Mask: net.CIDRMask(24, 32)}}); err != nil {
				t.Fatal(err)
			}
			// A route more specific than the mesh's, as a
			// misconfiguration might add, takes part of the
			// cluster network out of the mesh.
			if err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: net.ParseIP("10.200.0.0"), Mask: net.CIDRMask(16, 32)}, Gw: net.ParseIP("10.1.0.1")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	send := func(to string) error {
		conn, err := net.Dial("udp4", net.JoinHostPort(to, "9"))
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = conn.Write([]byte("plaintext"))
		return err
	}
	if err := send("10.200.0.1"); err != nil {
		t.Fatalf("without the firewall, sending over the uplink failed: %v", err)
	}
	for range 2 {
		if err := ApplyFirewall("mesh0"); err != nil {
			t.Fatal(err)
		}
	}
	if err := send("10.200.0.1"); !errors.Is(err, unix.EPERM) {
		t.Errorf("sending to the cluster network over the uplink: %v, want EPERM", err)
	}
	if err := send("10.192.0.1"); errors.Is(err, unix.EPERM) {
		t.Errorf("sending to the cluster network through the mesh was refused: %v", err)
	}
	if err := send("10.1.0.1"); err != nil {
		t.Errorf("sending outside the cluster network failed: %v", err)
	}
}
