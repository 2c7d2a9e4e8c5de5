package clusternet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"metropolis.dev/metropolis/node"
)

// InterfaceName is the name of the mesh's WireGuard interface.
const InterfaceName = "clusternet"

// RouteProtocol marks the routes the mesh installs, so that they are told
// apart from those of other services in the kernel's tables.
const RouteProtocol netlink.RouteProtocol = 129

// LinkGroup is the interface group of the mesh's interface.
const LinkGroup = 9

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
	// Route is routed into the mesh; the zero value means
	// node.ClusterNetwork.
	Route netip.Prefix
}

// Link is the node's WireGuard interface, set up by SetUp.
type Link struct {
	name  string
	route netip.Prefix
	wg    *wgctrl.Client
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
		c.Route = node.ClusterNetwork
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
	if err := netlink.LinkSetGroup(link, LinkGroup); err != nil {
		return nil, fmt.Errorf("setting the group of %s: %w", c.Name, err)
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
	l := &Link{name: c.Name, route: c.Route, wg: wg}
	if err := l.replaceRoute(link, netip.Addr{}); err != nil {
		wg.Close()
		return nil, err
	}
	return l, nil
}

// replaceRoute routes the mesh's range through link, preferring source
// address src if valid, so that the node's traffic into the mesh leaves
// from its mesh address.
func (l *Link) replaceRoute(link netlink.Link, src netip.Addr) error {
	route := &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       prefixNet(l.route),
		Scope:     netlink.SCOPE_LINK,
		Protocol:  RouteProtocol,
	}
	if src.IsValid() {
		route.Src = src.AsSlice()
	}
	if err := netlink.RouteReplace(route); err != nil {
		return fmt.Errorf("routing %s through %s: %w", l.route, l.name, err)
	}
	return nil
}

// SetAddress makes addr the interface's only address and the source of the
// node's traffic into the mesh.
func (l *Link) SetAddress(addr netip.Addr) error {
	link, err := netlink.LinkByName(l.name)
	if err != nil {
		return fmt.Errorf("looking for interface %s: %w", l.name, err)
	}
	want := netip.PrefixFrom(addr, addr.BitLen())
	have, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("listing the addresses of %s: %w", l.name, err)
	}
	present := false
	for _, a := range have {
		if a.IPNet.String() == want.String() {
			present = true
			continue
		}
		if err := netlink.AddrDel(link, &a); err != nil {
			return fmt.Errorf("removing address %s from %s: %w", a.IPNet, l.name, err)
		}
	}
	if !present {
		if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: prefixNet(want)}); err != nil {
			return fmt.Errorf("adding address %s to %s: %w", want, l.name, err)
		}
	}
	return l.replaceRoute(link, addr)
}

// Device reads the interface's WireGuard state from the kernel: its peers
// with their last handshakes and traffic counters.
func (l *Link) Device() (*wgtypes.Device, error) {
	dev, err := l.wg.Device(l.name)
	if err != nil {
		return nil, fmt.Errorf("reading the state of %s: %w", l.name, err)
	}
	return dev, nil
}

// keepalive is how often WireGuard sends a keepalive to each peer when
// nothing else went to it. Setting it makes the kernel shake hands with a
// new peer at once, rather than on its first packet, so that the mesh is
// ready (and its state visible) before it is used, and keeps the flows of
// stateful firewalls between the nodes open.
const keepalive = 25 * time.Second

// SetPeers makes peers the interface's only peers.
func (l *Link) SetPeers(peers []Peer) error {
	keepalive := keepalive
	cfg := wgtypes.Config{ReplacePeers: true}
	for _, p := range peers {
		pc := wgtypes.PeerConfig{
			PublicKey:                   p.PublicKey,
			Endpoint:                    net.UDPAddrFromAddrPort(p.Endpoint),
			PersistentKeepaliveInterval: &keepalive,
			ReplaceAllowedIPs:           true,
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
