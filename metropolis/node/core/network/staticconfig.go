package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	netpb "metropolis.dev/osbase/net/proto"
)

// interfaceKind is what an interface of the static configuration is.
type interfaceKind int

const (
	kindDevice interfaceKind = iota
	kindBond
	kindVLAN
)

// staticConfig is a validated static configuration (netpb.Net), with its
// strings parsed and its interfaces in the order they can be set up in:
// devices, then the bonds of devices, then VLANs on devices or bonds.
type staticConfig struct {
	interfaces  []*staticInterface
	nameservers []netip.Addr
	// ntpAddrs and ntpHosts are the NTP servers given as addresses and as
	// host names.
	ntpAddrs []netip.Addr
	ntpHosts []string
}

type staticInterface struct {
	name string
	kind interfaceKind

	// hardwareAddr and driver identify a device.
	hardwareAddr net.HardwareAddr
	driver       string
	// members and bondMode describe a bond.
	members  []string
	bondMode netpb.Bond_Mode
	// parent and vlanID describe a VLAN.
	parent string
	vlanID int

	dhcp      bool
	addresses []netip.Prefix
	routes    []staticRoute
	mtu       int
}

type staticRoute struct {
	destination netip.Prefix
	// gateway is invalid (the zero Addr) for on-link routes.
	gateway netip.Addr
	metric  int
}

// ValidateStaticConfig checks a static network configuration, saying what
// is wrong with it, if anything. The network service rejects invalid
// configurations the same way.
func ValidateStaticConfig(cfg *netpb.Net) error {
	_, err := parseStaticConfig(cfg)
	return err
}

func parseStaticConfig(cfg *netpb.Net) (*staticConfig, error) {
	sc := &staticConfig{}
	byName := make(map[string]*staticInterface)
	for i, pb := range cfg.GetInterface() {
		si, err := parseInterface(pb)
		if err != nil {
			if pb.GetName() != "" {
				return nil, fmt.Errorf("interface %q: %w", pb.GetName(), err)
			}
			return nil, fmt.Errorf("interface %d: %w", i, err)
		}
		if byName[si.name] != nil {
			return nil, fmt.Errorf("interface %q: defined twice", si.name)
		}
		byName[si.name] = si
		sc.interfaces = append(sc.interfaces, si)
	}
	if err := checkReferences(sc.interfaces, byName); err != nil {
		return nil, err
	}
	// A stable sort keeps the configuration's order within each kind.
	slices.SortStableFunc(sc.interfaces, func(a, b *staticInterface) int { return int(a.kind) - int(b.kind) })

	for _, s := range cfg.GetNameservers().GetServer() {
		addr, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("nameserver %q: not an IP address", s)
		}
		sc.nameservers = append(sc.nameservers, addr)
	}
	for _, s := range cfg.GetNtpServers() {
		if addr, err := netip.ParseAddr(s); err == nil {
			sc.ntpAddrs = append(sc.ntpAddrs, addr)
			continue
		}
		if !validHostname(s) {
			return nil, fmt.Errorf("NTP server %q: neither an IP address nor a host name", s)
		}
		sc.ntpHosts = append(sc.ntpHosts, s)
	}
	return sc, nil
}

func parseInterface(pb *netpb.Interface) (*staticInterface, error) {
	si := &staticInterface{name: pb.GetName(), dhcp: pb.GetDhcpv4(), mtu: int(pb.GetMtu())}
	if err := checkInterfaceName(si.name); err != nil {
		return nil, err
	}
	switch t := pb.GetType().(type) {
	case *netpb.Interface_Device:
		si.kind = kindDevice
		mac, err := net.ParseMAC(t.Device.GetHardwareAddress())
		if err != nil || len(mac) != 6 {
			return nil, fmt.Errorf("hardware address %q is not an Ethernet MAC address", t.Device.GetHardwareAddress())
		}
		si.hardwareAddr = mac
		si.driver = t.Device.GetDriver()
	case *netpb.Interface_Bond:
		si.kind = kindBond
		si.members = t.Bond.GetMemberInterface()
		si.bondMode = t.Bond.GetMode()
		if len(si.members) == 0 {
			return nil, errors.New("bond without members")
		}
		if _, ok := bondModes[si.bondMode]; !ok {
			return nil, fmt.Errorf("bond mode %v is not supported", si.bondMode)
		}
	case *netpb.Interface_Vlan:
		si.kind = kindVLAN
		si.parent = t.Vlan.GetParent()
		si.vlanID = int(t.Vlan.GetId())
		if si.vlanID < 1 || si.vlanID > 4094 {
			return nil, fmt.Errorf("VLAN ID %d is not within 1-4094", si.vlanID)
		}
	default:
		return nil, errors.New("neither a device, a bond nor a VLAN")
	}
	for _, a := range pb.GetAddress() {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("address %q is not in CIDR notation", a)
		}
		si.addresses = append(si.addresses, p)
	}
	for _, r := range pb.GetRoute() {
		route, err := parseRoute(r)
		if err != nil {
			return nil, err
		}
		si.routes = append(si.routes, route)
	}
	return si, nil
}

func parseRoute(r *netpb.Route) (staticRoute, error) {
	var route staticRoute
	dst, err := netip.ParsePrefix(r.GetDestination())
	if err != nil {
		return route, fmt.Errorf("route destination %q is not in CIDR notation", r.GetDestination())
	}
	if dst.Masked() != dst {
		return route, fmt.Errorf("route destination %q has bits set outside its prefix (did you mean %v?)", r.GetDestination(), dst.Masked())
	}
	route.destination = dst
	route.metric = int(r.GetMetric())
	if r.GetGateway() != "" {
		gw, err := netip.ParseAddr(r.GetGateway())
		if err != nil {
			return route, fmt.Errorf("route to %v: gateway %q is not an IP address", dst, r.GetGateway())
		}
		if gw.Is4() != dst.Addr().Is4() {
			return route, fmt.Errorf("route to %v: gateway %v is of another address family", dst, gw)
		}
		route.gateway = gw
	}
	return route, nil
}

// checkReferences checks the references between interfaces: bond members
// and VLAN parents.
func checkReferences(interfaces []*staticInterface, byName map[string]*staticInterface) error {
	bondOf := make(map[string]string)
	macs := make(map[string]string)
	vlans := make(map[string]string)
	for _, si := range interfaces {
		switch si.kind {
		case kindDevice:
			if other, ok := macs[si.hardwareAddr.String()]; ok {
				return fmt.Errorf("interfaces %q and %q both match hardware address %v", other, si.name, si.hardwareAddr)
			}
			macs[si.hardwareAddr.String()] = si.name
		case kindBond:
			for _, m := range si.members {
				member := byName[m]
				switch {
				case member == nil:
					return fmt.Errorf("bond %q: member %q is not defined", si.name, m)
				case member.kind != kindDevice:
					return fmt.Errorf("bond %q: member %q is not a device", si.name, m)
				case bondOf[m] != "":
					return fmt.Errorf("bond %q: member %q is already a member of bond %q", si.name, m, bondOf[m])
				case member.dhcp || len(member.addresses) > 0 || len(member.routes) > 0:
					return fmt.Errorf("bond %q: member %q has addresses, routes or DHCP of its own", si.name, m)
				}
				bondOf[m] = si.name
			}
		case kindVLAN:
			parent := byName[si.parent]
			if parent == nil {
				return fmt.Errorf("VLAN %q: parent %q is not defined", si.name, si.parent)
			}
			if parent.kind == kindVLAN {
				return fmt.Errorf("VLAN %q: parent %q is a VLAN itself", si.name, si.parent)
			}
			key := fmt.Sprintf("%s/%d", si.parent, si.vlanID)
			if other, ok := vlans[key]; ok {
				return fmt.Errorf("VLANs %q and %q both have ID %d on %q", other, si.name, si.vlanID, si.parent)
			}
			vlans[key] = si.name
		}
	}
	for _, si := range interfaces {
		if si.kind == kindVLAN && bondOf[si.parent] != "" {
			return fmt.Errorf("VLAN %q: parent %q is a member of bond %q", si.name, si.parent, bondOf[si.parent])
		}
	}
	return nil
}

// checkInterfaceName checks name against the kernel's rules for interface
// names.
func checkInterfaceName(name string) error {
	switch {
	case name == "":
		return errors.New("no name")
	case len(name) > 15:
		return fmt.Errorf("name %q is longer than 15 bytes", name)
	case name == "." || name == "..":
		return fmt.Errorf("name %q is not allowed", name)
	case strings.ContainsAny(name, "/: \t\n"):
		return fmt.Errorf("name %q contains '/', ':' or whitespace", name)
	}
	return nil
}

// validHostname reports whether s is a syntactically valid DNS host name.
func validHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
