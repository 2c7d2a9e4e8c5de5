package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"metropolis.dev/metropolis/node/core/network/dhcp4c"
	netpb "metropolis.dev/osbase/net/proto"
	"metropolis.dev/osbase/supervisor"
)

var bondModes = map[netpb.Bond_Mode]netlink.BondMode{
	netpb.Bond_MODE_ACTIVE_BACKUP: netlink.BOND_MODE_ACTIVE_BACKUP,
	netpb.Bond_MODE_LACP:          netlink.BOND_MODE_802_3AD,
	netpb.Bond_MODE_ROUND_ROBIN:   netlink.BOND_MODE_BALANCE_RR,
}

// bondMiimon is how often, in milliseconds, bonds check their members'
// carrier, to stop using members whose link went down.
const bondMiimon = 100

// runStatic returns a runnable that configures the interfaces as sc says,
// runs DHCP on those that ask for it, and publishes the status.
func (s *Service) runStatic(sc *staticConfig) supervisor.Runnable {
	return func(ctx context.Context) error {
		log := supervisor.Logger(ctx)
		links := make(map[string]netlink.Link)
		for _, si := range sc.interfaces {
			link, err := setUpInterface(si, links)
			if err != nil {
				return fmt.Errorf("interface %s: %w", si.name, err)
			}
			links[si.name] = link
			log.Infof("Configured %s", si.name)
		}
		// Addresses and routes go after all links exist and are up, as
		// the kernel refuses routes through links that are down.
		for _, si := range sc.interfaces {
			if err := configureAddresses(si, links[si.name]); err != nil {
				return fmt.Errorf("interface %s: %w", si.name, err)
			}
		}

		st := &staticStatus{cfg: sc, leases: make(map[string]*dhcp4c.Lease), publish: s.status.Set}
		st.update("", nil)
		for _, si := range sc.interfaces {
			if !si.dhcp {
				continue
			}
			onLease := func(l *dhcp4c.Lease) { st.update(si.name, l) }
			if err := supervisor.Run(ctx, "dhcp-"+runnableName(si.name), s.runDHCP(links[si.name], onLease)); err != nil {
				return err
			}
		}
		supervisor.Signal(ctx, supervisor.SignalHealthy)
		<-ctx.Done()
		return ctx.Err()
	}
}

var notRunnableName = regexp.MustCompile(`[^a-z0-9_-]`)

// runnableName turns an interface name into a supervisor runnable name,
// which allows fewer characters.
func runnableName(iface string) string {
	return notRunnableName.ReplaceAllString(iface, "_")
}

// setUpInterface finds or creates the link of si, names it, sets its MTU and
// brings it up. links holds the links of the interfaces set up before.
func setUpInterface(si *staticInterface, links map[string]netlink.Link) (netlink.Link, error) {
	var link netlink.Link
	var err error
	switch si.kind {
	case kindDevice:
		link, err = findDevice(si)
	case kindBond:
		link, err = ensureBond(si, links)
	case kindVLAN:
		link, err = ensureVLAN(si, links[si.parent])
	}
	if err != nil {
		return nil, err
	}
	if si.mtu > 0 && link.Attrs().MTU != si.mtu {
		if err := netlink.LinkSetMTU(link, si.mtu); err != nil {
			return nil, fmt.Errorf("setting MTU %d: %w", si.mtu, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("bringing up: %w", err)
	}
	return link, nil
}

// findDevice finds the device si describes and gives it si's name.
func findDevice(si *staticInterface) (netlink.Link, error) {
	all, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	var link netlink.Link
	for _, l := range all {
		// Bonds and VLANs share their members' and parents' addresses;
		// only devices are matched.
		if l.Type() != "device" && l.Type() != "veth" {
			continue
		}
		if !bytes.Equal(l.Attrs().HardwareAddr, si.hardwareAddr) {
			continue
		}
		if si.driver != "" {
			driver, err := linkDriver(l.Attrs().Name)
			if err != nil {
				return nil, err
			}
			if driver != si.driver {
				continue
			}
		}
		link = l
		break
	}
	if link == nil {
		what := si.hardwareAddr.String()
		if si.driver != "" {
			what += " and driver " + si.driver
		}
		return nil, fmt.Errorf("no device with hardware address %s (yet)", what)
	}
	if link.Attrs().Name == si.name {
		return link, nil
	}
	if other, err := netlink.LinkByName(si.name); err == nil {
		return nil, fmt.Errorf("device %s (%s) cannot be renamed: another link, of type %s, is called so", link.Attrs().Name, si.hardwareAddr, other.Type())
	}
	// Links can only be renamed while down.
	if err := netlink.LinkSetDown(link); err != nil {
		return nil, fmt.Errorf("taking %s down to rename it: %w", link.Attrs().Name, err)
	}
	if err := netlink.LinkSetName(link, si.name); err != nil {
		return nil, fmt.Errorf("renaming %s: %w", link.Attrs().Name, err)
	}
	return netlink.LinkByIndex(link.Attrs().Index)
}

// linkDriver returns the name of the kernel driver of the named link.
func linkDriver(name string) (string, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("creating socket for ethtool: %w", err)
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, name)
	if err != nil {
		return "", fmt.Errorf("getting driver of %s: %w", name, err)
	}
	return unix.ByteSliceToString(info.Driver[:]), nil
}

// ensureBond creates the bond si describes, if it does not exist yet, and
// makes its members members.
func ensureBond(si *staticInterface, links map[string]netlink.Link) (netlink.Link, error) {
	link, err := netlink.LinkByName(si.name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		bond := netlink.NewLinkBond(netlink.LinkAttrs{Name: si.name})
		bond.Mode = bondModes[si.bondMode]
		bond.Miimon = bondMiimon
		if err := netlink.LinkAdd(bond); err != nil {
			return nil, fmt.Errorf("creating bond: %w", err)
		}
		if link, err = netlink.LinkByName(si.name); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case link.Type() != "bond":
		return nil, fmt.Errorf("a link of type %s has the bond's name", link.Type())
	}
	for _, name := range si.members {
		member := links[name]
		if member.Attrs().MasterIndex == link.Attrs().Index {
			continue
		}
		// Links join a bond while down; the bond brings them up.
		if err := netlink.LinkSetDown(member); err != nil {
			return nil, fmt.Errorf("taking member %s down: %w", name, err)
		}
		if err := netlink.LinkSetMasterByIndex(member, link.Attrs().Index); err != nil {
			return nil, fmt.Errorf("adding member %s: %w", name, err)
		}
	}
	return link, nil
}

// ensureVLAN creates the VLAN si describes on parent, if it does not exist
// yet.
func ensureVLAN(si *staticInterface, parent netlink.Link) (netlink.Link, error) {
	link, err := netlink.LinkByName(si.name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		vlan := &netlink.Vlan{
			LinkAttrs: netlink.LinkAttrs{Name: si.name, ParentIndex: parent.Attrs().Index},
			VlanId:    si.vlanID,
		}
		if err := netlink.LinkAdd(vlan); err != nil {
			return nil, fmt.Errorf("creating VLAN %d on %s: %w", si.vlanID, si.parent, err)
		}
		return netlink.LinkByName(si.name)
	case err != nil:
		return nil, err
	}
	vlan, ok := link.(*netlink.Vlan)
	if !ok || vlan.VlanId != si.vlanID || vlan.ParentIndex != parent.Attrs().Index {
		return nil, fmt.Errorf("a link of type %s, not VLAN %d on %s, has the VLAN's name", link.Type(), si.vlanID, si.parent)
	}
	return link, nil
}

// configureAddresses adds the static addresses and routes of si to link.
func configureAddresses(si *staticInterface, link netlink.Link) error {
	for _, p := range si.addresses {
		addr := &netlink.Addr{IPNet: prefixToIPNet(p)}
		if err := netlink.AddrReplace(link, addr); err != nil {
			return fmt.Errorf("adding address %v: %w", p, err)
		}
	}
	for _, r := range si.routes {
		route := &netlink.Route{
			LinkIndex: link.Attrs().Index,
			Dst:       &net.IPNet{IP: r.destination.Addr().AsSlice(), Mask: net.CIDRMask(r.destination.Bits(), r.destination.Addr().BitLen())},
			Priority:  r.metric,
			Protocol:  unix.RTPROT_STATIC,
		}
		if r.gateway.IsValid() {
			route.Gw = r.gateway.AsSlice()
		} else {
			route.Scope = netlink.SCOPE_LINK
		}
		if err := netlink.RouteReplace(route); err != nil {
			return fmt.Errorf("adding route to %v: %w", r.destination, err)
		}
	}
	return nil
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// staticStatus computes the status of a static configuration and the leases
// of its DHCP interfaces.
type staticStatus struct {
	cfg     *staticConfig
	publish func(*Status)

	mu     sync.Mutex
	leases map[string]*dhcp4c.Lease
	// published tells whether a status was published: the first is only
	// published once the node has an address.
	published bool
}

// update records lease as the lease of the named interface (none if name is
// empty) and publishes the resulting status.
func (st *staticStatus) update(name string, lease *dhcp4c.Lease) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if name != "" {
		st.leases[name] = lease
	}
	status := &Status{ExternalAddress: st.externalAddress()}
	for _, a := range st.cfg.nameservers {
		status.DNSServers = append(status.DNSServers, a.AsSlice())
	}
	for _, a := range st.cfg.ntpAddrs {
		status.NTPServers = append(status.NTPServers, a.AsSlice())
	}
	status.NTPServerNames = st.cfg.ntpHosts
	for _, si := range st.cfg.interfaces {
		if l := st.leases[si.name]; l != nil {
			status.DNSServers = append(status.DNSServers, l.DNSServers()...)
			status.NTPServers = append(status.NTPServers, l.NTPServers()...)
		}
	}
	if status.ExternalAddress == nil && !st.published {
		return
	}
	st.published = true
	st.publish(status)
}

// externalAddress picks the node's external address. In order of
// preference: a static address on an interface with a static default
// route; the address of a lease that has a default route; any static
// address; any leased address. IPv4 goes before IPv6 within each.
func (st *staticStatus) externalAddress() net.IP {
	var candidates [4][]netip.Addr
	for _, si := range st.cfg.interfaces {
		tier := 2
		for _, r := range si.routes {
			if r.destination.Bits() == 0 {
				tier = 0
			}
		}
		for _, p := range si.addresses {
			candidates[tier] = append(candidates[tier], p.Addr())
		}
		if l := st.leases[si.name]; l != nil {
			tier := 3
			for _, r := range l.Routes() {
				if ones, _ := r.Dest.Mask.Size(); ones == 0 {
					tier = 1
				}
			}
			addr, _ := netip.AddrFromSlice(l.Address().IP)
			candidates[tier] = append(candidates[tier], addr)
		}
	}
	for _, tier := range candidates {
		for _, want4 := range []bool{true, false} {
			for _, a := range tier {
				if a.Is4() == want4 {
					return a.AsSlice()
				}
			}
		}
	}
	return nil
}
