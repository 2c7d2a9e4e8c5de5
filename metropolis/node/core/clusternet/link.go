package clusternet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// InterfaceName is the name of the mesh's WireGuard interface.
const InterfaceName = "clusternet"

// ClusterNetwork is the range of the cluster's own networks (the pod
// networks), which is routed into the mesh. The curator accepts prefixes
// within it from nodes.
var ClusterNetwork = netip.MustParsePrefix("10.192.0.0/11")

// wireguardOverhead is what WireGuard adds to every packet on an IPv6
// uplink, the larger case: 40 bytes of IPv6, 8 of UDP and 32 of WireGuard.
const wireguardOverhead = 80

// LinkConfig describes the node's WireGuard interface.
type LinkConfig struct {
	// Name of the interface; empty means InterfaceName.
	Name string
	// PrivateKey of the node in the mesh.
	PrivateKey wgtypes.Key
	// Port is the UDP port WireGuard listens on.
	Port int
	// UplinkMTU is the MTU of the interface the mesh's packets leave
	// through; the mesh's MTU is smaller by WireGuard's overhead.
	UplinkMTU int
	// Route is routed into the mesh; the zero value means ClusterNetwork.
	Route netip.Prefix
}

// Link is the node's WireGuard interface, set up by SetUp.
type Link struct {
	name string
	wg   *wgctrl.Client
}

// SetUp creates the interface described by c, unless it exists, and
// configures it: key, port, MTU, up, and the route into the mesh. It is
// idempotent, so a restarted service takes over the interface as it finds
// it.
func SetUp(c LinkConfig) (*Link, error) {
	if c.Name == "" {
		c.Name = InterfaceName
	}
	if !c.Route.IsValid() {
		c.Route = ClusterNetwork
	}
	if c.Port <= 0 || c.Port > 65535 {
		return nil, fmt.Errorf("port %d is out of range", c.Port)
	}
	mtu := c.UplinkMTU - wireguardOverhead
	if mtu < 1280 {
		return nil, fmt.Errorf("uplink MTU %d leaves %d for the mesh, less than the 1280 IPv6 needs", c.UplinkMTU, mtu)
	}
	link, err := netlink.LinkByName(c.Name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		attrs := netlink.NewLinkAttrs()
		attrs.Name = c.Name
		attrs.MTU = mtu
		if err := netlink.LinkAdd(&netlink.Wireguard{LinkAttrs: attrs}); err != nil {
			return nil, fmt.Errorf("creating WireGuard interface %s: %w", c.Name, err)
		}
		if link, err = netlink.LinkByName(c.Name); err != nil {
			return nil, fmt.Errorf("finding the new interface %s: %w", c.Name, err)
		}
	case err != nil:
		return nil, fmt.Errorf("looking for interface %s: %w", c.Name, err)
	case link.Type() != "wireguard":
		return nil, fmt.Errorf("interface %s exists but is a %s interface, not WireGuard", c.Name, link.Type())
	}
	if err := netlink.LinkSetMTU(link, mtu); err != nil {
		return nil, fmt.Errorf("setting the MTU of %s: %w", c.Name, err)
	}
	wg, err := wgctrl.New()
	if err != nil {
		return nil, fmt.Errorf("connecting to WireGuard: %w", err)
	}
	port := c.Port
	if err := wg.ConfigureDevice(c.Name, wgtypes.Config{PrivateKey: &c.PrivateKey, ListenPort: &port}); err != nil {
		wg.Close()
		return nil, fmt.Errorf("configuring %s: %w", c.Name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		wg.Close()
		return nil, fmt.Errorf("bringing %s up: %w", c.Name, err)
	}
	route := &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       prefixNet(c.Route),
		Scope:     netlink.SCOPE_LINK,
	}
	if err := netlink.RouteReplace(route); err != nil {
		wg.Close()
		return nil, fmt.Errorf("routing %s through %s: %w", c.Route, c.Name, err)
	}
	return &Link{name: c.Name, wg: wg}, nil
}

// SetPeers makes peers the interface's only peers.
func (l *Link) SetPeers(peers []Peer) error {
	cfg := wgtypes.Config{ReplacePeers: true}
	for _, p := range peers {
		pc := wgtypes.PeerConfig{
			PublicKey:         p.PublicKey,
			Endpoint:          net.UDPAddrFromAddrPort(p.Endpoint),
			ReplaceAllowedIPs: true,
		}
		for _, prefix := range p.Prefixes {
			pc.AllowedIPs = append(pc.AllowedIPs, *prefixNet(prefix))
		}
		cfg.Peers = append(cfg.Peers, pc)
	}
	if err := l.wg.ConfigureDevice(l.name, cfg); err != nil {
		return fmt.Errorf("configuring the peers of %s: %w", l.name, err)
	}
	return nil
}

// Close releases the connection to the kernel; the interface stays.
func (l *Link) Close() error {
	return l.wg.Close()
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
