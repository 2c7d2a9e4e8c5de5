package nodetest

import (
	"net"
	"sync"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"metropolis.dev/osbase/net/netnstest"
	"metropolis.dev/osbase/net/sntp/sntptest"
)

// The test network: the host's side of the tap device, and the address the
// node is given.
var (
	hostIP   = net.IPv4(10, 99, 0, 1).To4()
	nodeIP   = net.IPv4(10, 99, 0, 10).To4()
	nodeMAC  = net.HardwareAddr{0x02, 0x00, 0x0a, 0x63, 0x00, 0x0a}
	netMask  = net.CIDRMask(24, 32)
	tapName  = "nodetap0"
	leaseSec = uint32(3600)
)

// testNetwork is the network the VMs are connected to, and what its
// servers saw.
type testNetwork struct {
	mu sync.Mutex
	// vendorClasses are the DHCP vendor class identifiers of requests.
	vendorClasses []string
	// dnsQueries are the names asked for, with the asker's address.
	dnsQueries []dnsQuery
}

type dnsQuery struct {
	name string
	from string
}

// startNetwork creates the tap device and starts DHCP, DNS and NTP on its
// host side, until the test ends. It skips the test unless it runs in a
// network namespace of its own.
func startNetwork(t testing.TB) *testNetwork {
	t.Helper()
	netnstest.Require(t)
	n := &testNetwork{}

	tap := &netlink.Tuntap{
		LinkAttrs: netlink.LinkAttrs{Name: tapName},
		Mode:      netlink.TUNTAP_MODE_TAP,
		// Single queue, as qemu opens it.
		Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_ONE_QUEUE,
	}
	if err := netlink.LinkAdd(tap); err != nil {
		t.Fatalf("creating tap device: %v", err)
	}
	t.Cleanup(func() { netlink.LinkDel(tap) })
	if err := netlink.AddrAdd(tap, &netlink.Addr{IPNet: &net.IPNet{IP: hostIP, Mask: netMask}}); err != nil {
		t.Fatalf("addressing tap device: %v", err)
	}
	if err := netlink.LinkSetUp(tap); err != nil {
		t.Fatalf("bringing tap device up: %v", err)
	}

	dhcp, err := server4.NewServer(tapName, &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}, n.serveDHCP)
	if err != nil {
		t.Fatalf("starting DHCP server: %v", err)
	}
	go dhcp.Serve()
	t.Cleanup(func() { dhcp.Close() })

	pc, err := net.ListenPacket("udp", net.JoinHostPort(hostIP.String(), "53"))
	if err != nil {
		t.Fatalf("starting DNS server: %v", err)
	}
	started := make(chan struct{})
	dnsServer := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(n.serveDNS), NotifyStartedFunc: func() { close(started) }}
	go dnsServer.ActivateAndServe()
	<-started
	t.Cleanup(func() { dnsServer.Shutdown() })

	sntptest.Start(t, net.JoinHostPort(hostIP.String(), "123"), 0)
	return n
}

// serveDHCP gives nodeIP to every client, with the host as router, name
// server and NTP server.
func (n *testNetwork) serveDHCP(conn net.PacketConn, peer net.Addr, req *dhcpv4.DHCPv4) {
	var reply dhcpv4.MessageType
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		reply = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		reply = dhcpv4.MessageTypeAck
	default:
		return
	}
	n.mu.Lock()
	n.vendorClasses = append(n.vendorClasses, req.ClassIdentifier())
	n.mu.Unlock()
	res, err := dhcpv4.NewReplyFromRequest(req,
		dhcpv4.WithMessageType(reply),
		dhcpv4.WithYourIP(nodeIP),
		dhcpv4.WithServerIP(hostIP),
		dhcpv4.WithNetmask(netMask),
		dhcpv4.WithRouter(hostIP),
		dhcpv4.WithDNS(hostIP),
		dhcpv4.WithLeaseTime(leaseSec),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(hostIP)),
		dhcpv4.WithOption(dhcpv4.OptNTPServers(hostIP)),
	)
	if err != nil {
		return
	}
	// The client has no address yet: answer by broadcast.
	to := peer
	if u, ok := peer.(*net.UDPAddr); !ok || u.IP.IsUnspecified() {
		to = &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
	}
	conn.WriteTo(res.ToBytes(), to)
}

// serveDNS answers probeName with probeAddress and every other name with
// NXDOMAIN.
func (n *testNetwork) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	res := new(dns.Msg)
	res.SetReply(req)
	for _, q := range req.Question {
		n.mu.Lock()
		n.dnsQueries = append(n.dnsQueries, dnsQuery{name: q.Name, from: w.RemoteAddr().String()})
		n.mu.Unlock()
		if q.Name == dns.Fqdn(probeName) && q.Qtype == dns.TypeA {
			res.Answer = append(res.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.ParseIP(probeAddress),
			})
		}
	}
	if len(res.Answer) == 0 && !hasQuestion(req, dns.Fqdn(probeName)) {
		res.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(res)
}

func hasQuestion(m *dns.Msg, name string) bool {
	for _, q := range m.Question {
		if q.Name == name {
			return true
		}
	}
	return false
}

// seen returns what the servers saw so far.
func (n *testNetwork) seen() ([]string, []dnsQuery) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.vendorClasses...), append([]dnsQuery(nil), n.dnsQueries...)
}
