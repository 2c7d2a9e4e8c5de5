package network

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"metropolis.dev/osbase/logtree"
	"metropolis.dev/osbase/net/netnstest"
	"metropolis.dev/osbase/supervisor"
)

var (
	dhcpServerIP = net.IPv4(10, 42, 0, 1).To4()
	dhcpClientIP = net.IPv4(10, 42, 0, 10).To4()
	dhcpDNS      = net.IPv4(10, 42, 0, 53).To4()
	dhcpNTP      = net.IPv4(10, 42, 0, 123).To4()
)

// dhcpLease is short, so that the test sees renewal, rebinding and expiry:
// T1 after 3 s, T2 after 5.25 s.
const dhcpLease = 6 * time.Second

// leaseAddress returns the DHCP-leased IPv4 address of link, or an error
// saying what the link has instead.
func leaseAddress(link netlink.Link) (*netlink.Addr, error) {
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if a.IP.Equal(dhcpClientIP) {
			return &a, nil
		}
	}
	return nil, fmt.Errorf("%s has addresses %v, not %v", link.Attrs().Name, addrs, dhcpClientIP)
}

// dhcpRoutes returns the routes of link installed by DHCP, formatted as
// "destination via gateway".
func dhcpRoutes(t *testing.T, link netlink.Link) []string {
	t.Helper()
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{LinkIndex: link.Attrs().Index, Protocol: unix.RTPROT_DHCP},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range routes {
		got = append(got, fmt.Sprintf("%s via %s", prefixString(r.Dst), r.Gw))
	}
	return got
}

// TestDynamic runs the network service without static configuration
// against a DHCP server across a veth pair, through a whole lease
// lifecycle: acquisition, renewals, and expiry once the server stops
// answering.
func TestDynamic(t *testing.T) {
	netnstest.Require(t)
	peer := netnstest.NewNamespace(t)
	eth := addVeth(t, "eth0", nil, peer, "srv0")
	configurePeer(t, peer, "srv0", "10.42.0.1/24", "10.42.0.53/24", "10.42.0.254/24")

	_, staticDest, _ := net.ParseCIDR("198.51.100.0/24")
	server := startDHCPServer(t, peer, "srv0", dhcpServerIP, dhcpClientIP, dhcpLease,
		dhcpv4.OptDNS(dhcpDNS),
		dhcpv4.OptNTPServers(dhcpNTP),
		dhcpv4.OptClasslessStaticRoute(
			&dhcpv4.Route{Dest: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Router: dhcpServerIP},
			&dhcpv4.Route{Dest: staticDest, Router: net.IPv4(10, 42, 0, 254).To4()},
		))
	startDNSUpstream(t, peer, "10.42.0.53", "192.0.2.99")

	resolvConf := t.TempDir() + "/resolv.conf"
	svc := New(Config{DHCPVendorClass: "metropolis-test", ResolvConfPath: resolvConf})
	supervisor.TestHarness(t, svc.Run)

	// Acquisition.
	st := waitForStatus(t, svc.Status(), 20*time.Second, "an external address", func(s *Status) bool {
		return s.ExternalAddress != nil
	})
	if !st.ExternalAddress.Equal(dhcpClientIP) {
		t.Errorf("external address %v, want %v", st.ExternalAddress, dhcpClientIP)
	}
	if len(st.DNSServers) != 1 || !st.DNSServers[0].Equal(dhcpDNS) || len(st.NTPServers) != 1 || !st.NTPServers[0].Equal(dhcpNTP) {
		t.Errorf("status has DNS servers %v and NTP servers %v, want [%v] and [%v]", st.DNSServers, st.NTPServers, dhcpDNS, dhcpNTP)
	}
	addr, err := leaseAddress(eth)
	if err != nil {
		t.Fatal(err)
	}
	if ones, _ := addr.Mask.Size(); ones != 24 || addr.ValidLft <= 0 || addr.ValidLft > int(dhcpLease/time.Second) {
		t.Errorf("leased address %v valid for %d s, want a /24 valid for at most the lease's %v", addr.IPNet, addr.ValidLft, dhcpLease)
	}
	// Option 121 replaces the router option, and both of its routes are
	// installed.
	routes := dhcpRoutes(t, eth)
	want := []string{"0.0.0.0/0 via 10.42.0.1", "198.51.100.0/24 via 10.42.0.254"}
	if strings.Join(routes, ", ") != strings.Join(want, ", ") {
		t.Errorf("DHCP routes %v, want %v", routes, want)
	}
	requests := server.requests()
	if len(requests) == 0 || requests[0].vendorClass != "metropolis-test" {
		t.Errorf("first request %+v, want one with vendor class metropolis-test", requests)
	}

	// The kernel's parameters are set, in the test's namespace.
	for path, want := range map[string]string{
		"net/ipv4/ip_forward":         "1",
		"net/ipv4/conf/all/rp_filter": "1",
		"net/ipv6/conf/all/accept_ra": "0",
	} {
		if got, err := os.ReadFile("/proc/sys/" + path); err != nil || strings.TrimSpace(string(got)) != want {
			t.Errorf("sysctl %s is %q (%v), want %s", path, got, err, want)
		}
	}

	// The local resolver forwards to the lease's name server.
	poll(t, 10*time.Second, "resolving through the local resolver", func() error {
		q := new(dns.Msg).SetQuestion("node.example.", dns.TypeA)
		resp, err := dns.Exchange(q, "127.0.0.1:53")
		if err != nil {
			return err
		}
		if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != "192.0.2.99" {
			return fmt.Errorf("got %v", resp)
		}
		return nil
	})
	if got, err := os.ReadFile(resolvConf); err != nil || !strings.HasPrefix(string(got), "nameserver 127.0.0.1\n") {
		t.Errorf("resolv.conf is %q (%v), want one naming 127.0.0.1", got, err)
	}

	// Renewal: a unicast REQUEST from the leased address before the lease
	// ends, which keeps the address past the end of the first lease.
	firstBound := time.Now()
	poll(t, dhcpLease, "renewal by unicast", func() error {
		for _, r := range server.requests() {
			if r.typ == dhcpv4.MessageTypeRequest && !r.broadcast && r.clientIP.Equal(dhcpClientIP) {
				return nil
			}
		}
		return fmt.Errorf("server saw %+v", server.requests())
	})
	for time.Since(firstBound) < dhcpLease+time.Second {
		if _, err := leaseAddress(eth); err != nil {
			t.Fatalf("%v after bound: %v", time.Since(firstBound), err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Server gone: the client keeps renewing until T2, rebinds by
	// broadcast until the lease's end, and then drops the address.
	server.setAnswering(false)
	stopped := time.Now()
	lastACK := server.lastACKAt()
	st = waitForStatus(t, svc.Status(), 2*dhcpLease, "no external address", func(s *Status) bool {
		return s.ExternalAddress == nil
	})
	dropped := time.Now()
	if early := lastACK.Add(dhcpLease - 500*time.Millisecond); dropped.Before(early) {
		t.Errorf("lease dropped %v after the last ACK, before the lease of %v ended", dropped.Sub(lastACK), dhcpLease)
	}
	if len(st.DNSServers) != 0 {
		t.Errorf("status without address still has DNS servers %v", st.DNSServers)
	}
	var renewing, rebinding bool
	for _, r := range server.requests() {
		if r.at.Before(stopped) || r.typ != dhcpv4.MessageTypeRequest || !r.clientIP.Equal(dhcpClientIP) {
			continue
		}
		renewing = renewing || !r.broadcast
		rebinding = rebinding || r.broadcast
	}
	if !renewing || !rebinding {
		t.Errorf("after the server stopped answering: saw renewal %v, rebinding %v; want both. Requests: %+v", renewing, rebinding, server.requests())
	}
	poll(t, 2*time.Second, "address removed", func() error {
		if _, err := leaseAddress(eth); err == nil {
			return fmt.Errorf("%v still on %s", dhcpClientIP, eth.Attrs().Name)
		}
		if routes := dhcpRoutes(t, eth); len(routes) != 0 {
			return fmt.Errorf("routes %v remain", routes)
		}
		return nil
	})
}

// TestDynamicWaitsForSingleInterface checks that the service does not pick
// one of several Ethernet interfaces.
func TestDynamicWaitsForSingleInterface(t *testing.T) {
	netnstest.Require(t)
	peer := netnstest.NewNamespace(t)
	addVeth(t, "eth0", nil, peer, "srv0")
	second := addVeth(t, "eth1", nil, peer, "srv1")
	configurePeer(t, peer, "srv0", "10.42.0.1/24")
	server := startDHCPServer(t, peer, "srv0", dhcpServerIP, dhcpClientIP, time.Minute)

	svc := New(Config{})
	_, lt := supervisor.TestHarness(t, svc.Run)
	poll(t, 10*time.Second, "a log entry about the ambiguity", func() error {
		reader, err := lt.Read("root.dynamic", logtree.WithBacklog(logtree.BacklogAllAvailable))
		if err != nil {
			return err
		}
		defer reader.Close()
		for _, e := range reader.Backlog {
			if strings.Contains(e.String(), "Several Ethernet interfaces (eth0, eth1)") {
				return nil
			}
		}
		return fmt.Errorf("not logged yet")
	})
	if n := len(server.requests()); n != 0 {
		t.Fatalf("DHCP server saw %d requests while the interface was ambiguous", n)
	}

	// Once the second interface is gone, the first is used.
	if err := netlink.LinkDel(second); err != nil {
		t.Fatal(err)
	}
	st := waitForStatus(t, svc.Status(), 20*time.Second, "an external address", func(s *Status) bool {
		return s.ExternalAddress != nil
	})
	if !st.ExternalAddress.Equal(dhcpClientIP) {
		t.Errorf("external address %v, want %v", st.ExternalAddress, dhcpClientIP)
	}
}
