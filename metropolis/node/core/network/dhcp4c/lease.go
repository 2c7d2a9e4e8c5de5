package dhcp4c

import (
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Lease is an address granted by a DHCP server, with the configuration the
// server sent along with it.
type Lease struct {
	// ACK is the server's DHCPACK that granted or last extended the lease.
	// Its options carry the configuration; Lease's methods interpret the
	// commonly needed ones.
	ACK *dhcpv4.DHCPv4
	// Start is when the client sent the request that the ACK answered. The
	// lease's times count from then (RFC 2131, 4.4.1).
	Start time.Time
	// Duration is the lease time (option 51).
	Duration time.Duration
	// RenewAfter and RebindAfter are T1 and T2 (options 58 and 59, or
	// their defaults of 0.5 and 0.875 times Duration).
	RenewAfter  time.Duration
	RebindAfter time.Duration
}

// Address returns the leased address with the subnet's prefix length, from
// the subnet mask option, or the address's classful mask if the server sent
// none.
func (l *Lease) Address() *net.IPNet {
	ip := l.ACK.YourIPAddr.To4()
	mask := l.ACK.SubnetMask()
	if mask == nil {
		mask = ip.DefaultMask()
	}
	return &net.IPNet{IP: ip, Mask: mask}
}

// ServerID returns the address of the server that granted the lease.
func (l *Lease) ServerID() net.IP {
	return l.ACK.ServerIdentifier()
}

// RenewAt, RebindAt and ExpiresAt return T1, T2 and the end of the lease as
// points in time.
func (l *Lease) RenewAt() time.Time   { return l.Start.Add(l.RenewAfter) }
func (l *Lease) RebindAt() time.Time  { return l.Start.Add(l.RebindAfter) }
func (l *Lease) ExpiresAt() time.Time { return l.Start.Add(l.Duration) }

// Routes returns the routes the lease asks for. Following RFC 3442, if the
// server sent classless static routes (option 121), they are the only
// routes, and the router option is ignored; otherwise the first router
// becomes the default gateway. A route whose Router is 0.0.0.0 is on-link.
func (l *Lease) Routes() []*dhcpv4.Route {
	if routes := l.ACK.ClasslessStaticRoute(); len(routes) > 0 {
		return routes
	}
	routers := l.ACK.Router()
	if len(routers) == 0 {
		return nil
	}
	return []*dhcpv4.Route{{
		Dest:   &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
		Router: routers[0],
	}}
}

// DNSServers returns the domain name servers (option 6).
func (l *Lease) DNSServers() []net.IP {
	return l.ACK.DNS()
}

// NTPServers returns the NTP servers (option 42).
func (l *Lease) NTPServers() []net.IP {
	return l.ACK.NTPServers()
}
