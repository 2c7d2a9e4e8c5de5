package network

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"metropolis.dev/metropolis/node/core/network/dhcp4c"
	"metropolis.dev/osbase/supervisor"
)

// runDHCP returns a runnable keeping link configured by DHCP, reporting
// every change of lease (nil when there is none) to onLease. It starts by
// removing what an earlier DHCP client left on the link, whose lease it
// cannot know.
func (s *Service) runDHCP(link netlink.Link, onLease func(*dhcp4c.Lease)) supervisor.Runnable {
	return func(ctx context.Context) error {
		iface, err := net.InterfaceByIndex(link.Attrs().Index)
		if err != nil {
			return fmt.Errorf("finding interface %s: %w", link.Attrs().Name, err)
		}
		if err := flushLeases(link); err != nil {
			return err
		}
		client, err := dhcp4c.NewClient(iface)
		if err != nil {
			return err
		}
		client.VendorClass = s.cfg.DHCPVendorClass
		client.LeaseCallback = func(old, new *dhcp4c.Lease) error {
			if err := applyLease(link, old, new); err != nil {
				return err
			}
			onLease(new)
			return nil
		}
		return client.Run(ctx)
	}
}

// flushLeases removes the addresses with a limited lifetime (which only DHCP
// leases have) and the routes that DHCP installed from link.
func flushLeases(link netlink.Link) error {
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("listing addresses of %s: %w", link.Attrs().Name, err)
	}
	for _, a := range addrs {
		if a.Flags&unix.IFA_F_PERMANENT != 0 {
			continue
		}
		if err := netlink.AddrDel(link, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("removing stale lease address %v from %s: %w", a.IPNet, link.Attrs().Name, err)
		}
	}
	return replaceLeaseRoutes(link, nil)
}

// applyLease moves link's configuration from lease old to lease new, either
// of which may be nil.
func applyLease(link netlink.Link, old, new *dhcp4c.Lease) error {
	name := link.Attrs().Name
	if new != nil {
		addr := &netlink.Addr{IPNet: new.Address()}
		// The address lives as long as the lease, so that the kernel
		// removes it even if the client is not there to do so.
		if left := time.Until(new.ExpiresAt()); left < time.Duration(math.MaxUint32-1)*time.Second {
			addr.ValidLft = max(int(left/time.Second), 1)
			addr.PreferedLft = addr.ValidLft
		}
		if err := netlink.AddrReplace(link, addr); err != nil {
			return fmt.Errorf("adding leased address %v to %s: %w", addr.IPNet, name, err)
		}
	}
	// Routes go before the old address, as they may use it as their
	// source.
	if err := replaceLeaseRoutes(link, new); err != nil {
		return err
	}
	if old != nil && (new == nil || !old.Address().IP.Equal(new.Address().IP)) {
		addr := &netlink.Addr{IPNet: old.Address()}
		if err := netlink.AddrDel(link, addr); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("removing address %v of the old lease from %s: %w", addr.IPNet, name, err)
		}
	}
	return nil
}

// replaceLeaseRoutes makes the DHCP routes of link those of lease: none if
// lease is nil.
func replaceLeaseRoutes(link netlink.Link, lease *dhcp4c.Lease) error {
	name := link.Attrs().Name
	want := leaseRoutes(link, lease)
	existing, err := netlink.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{LinkIndex: link.Attrs().Index, Protocol: unix.RTPROT_DHCP},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("listing routes of %s: %w", name, err)
	}
	for _, r := range existing {
		keep := false
		for _, w := range want {
			keep = keep || sameRoute(r, w)
		}
		if keep {
			continue
		}
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("removing route %v from %s: %w", r, name, err)
		}
	}
	for _, r := range want {
		if err := netlink.RouteReplace(&r); err != nil {
			return fmt.Errorf("adding route to %v via %v on %s: %w", r.Dst, r.Gw, name, err)
		}
	}
	return nil
}

// dhcpRouteMetric is the base metric of routes from DHCP leases, which is
// offset by the interface's index. Static routes (metric 0 unless
// configured) thus win over leased ones to the same destination, and the
// leased routes of several interfaces coexist instead of replacing each
// other.
const dhcpRouteMetric = 1024

// leaseRoutes returns the routes lease asks for on link, on-link routes
// first, as routes through gateways may depend on them.
func leaseRoutes(link netlink.Link, lease *dhcp4c.Lease) []netlink.Route {
	if lease == nil {
		return nil
	}
	subnet := lease.Address()
	var onLink, viaGateway []netlink.Route
	for _, r := range lease.Routes() {
		route := netlink.Route{
			LinkIndex: link.Attrs().Index,
			Dst:       r.Dest,
			Src:       subnet.IP,
			Protocol:  unix.RTPROT_DHCP,
			Priority:  dhcpRouteMetric + link.Attrs().Index,
		}
		if r.Router == nil || r.Router.IsUnspecified() {
			route.Scope = netlink.SCOPE_LINK
			onLink = append(onLink, route)
			continue
		}
		route.Gw = r.Router
		if !subnet.Contains(r.Router) {
			// Servers may name gateways outside the leased subnet, eg.
			// for /32 leases; they are still reachable on the link.
			route.Flags = int(netlink.FLAG_ONLINK)
		}
		viaGateway = append(viaGateway, route)
	}
	return append(onLink, viaGateway...)
}

// sameRoute reports whether an existing route is the wanted one.
func sameRoute(existing, want netlink.Route) bool {
	return prefixString(existing.Dst) == prefixString(want.Dst) && existing.Gw.Equal(want.Gw)
}

// prefixString formats a route destination, where nil means the default
// route.
func prefixString(n *net.IPNet) string {
	if n == nil {
		return "0.0.0.0/0"
	}
	return n.String()
}
