package network

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/net/netnstest"
)

// addVeth creates a veth pair whose end name stays in the test's namespace
// and whose other end, peerName, moves to peer. The pair is deleted when
// the test ends.
func addVeth(t *testing.T, name string, mac net.HardwareAddr, peer *netnstest.Namespace, peerName string) netlink.Link {
	t.Helper()
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: name, HardwareAddr: mac},
		PeerName:  peerName,
	}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("creating veth pair %s/%s: %v", name, peerName, err)
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	index := link.Attrs().Index
	t.Cleanup(func() {
		// The link may have been renamed by the code under test.
		if l, err := netlink.LinkByIndex(index); err == nil {
			netlink.LinkDel(l)
		}
	})
	peerLink, err := netlink.LinkByName(peerName)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetNsFd(peerLink, peer.FD()); err != nil {
		t.Fatalf("moving %s to the peer namespace: %v", peerName, err)
	}
	return link
}

// configurePeer gives the named link in ns the addresses and brings it up.
func configurePeer(t *testing.T, ns *netnstest.Namespace, name string, addrs ...string) {
	t.Helper()
	link, err := ns.Netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		addr, err := netlink.ParseAddr(a)
		if err != nil {
			t.Fatal(err)
		}
		if err := ns.Netlink.AddrAdd(link, addr); err != nil {
			t.Fatalf("adding %s to %s: %v", a, name, err)
		}
	}
	if err := ns.Netlink.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
}

// poll calls cond until it returns nil, failing the test with cond's last
// error if that takes longer than timeout.
func poll(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitForStatus returns the first status published by v that matches pred.
func waitForStatus(t *testing.T, v event.Value[*Status], timeout time.Duration, what string, pred func(*Status) bool) *Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	w := v.Watch()
	defer w.Close()
	st, err := w.Get(ctx, event.Filter(pred))
	if err != nil {
		t.Fatalf("waiting for status with %s: %v", what, err)
	}
	return st
}

// dhcpRequest is a DHCP message seen by the test server.
type dhcpRequest struct {
	typ         dhcpv4.MessageType
	broadcast   bool
	clientIP    net.IP
	vendorClass string
	at          time.Time
}

// dhcpServer is a DHCP server for one client, in a namespace of its own,
// which leases clientIP with a short lease and records what it sees. It
// listens on two sockets, one for broadcasts and one for unicasts to
// serverIP, to tell renewals (unicast) from rebinding (broadcast).
type dhcpServer struct {
	serverIP, clientIP net.IP
	lease              time.Duration
	options            []dhcpv4.Option
	reply              net.PacketConn

	mu        sync.Mutex
	answering bool
	seen      []dhcpRequest
	lastACK   time.Time
}

func startDHCPServer(t *testing.T, ns *netnstest.Namespace, ifname string, serverIP, clientIP net.IP, lease time.Duration, options ...dhcpv4.Option) *dhcpServer {
	t.Helper()
	s := &dhcpServer{serverIP: serverIP, clientIP: clientIP, lease: lease, options: options, answering: true}
	var unicast, broadcast *net.UDPConn
	err := ns.Do(func() (err error) {
		if unicast, err = server4.NewIPv4UDPConn(ifname, &net.UDPAddr{IP: serverIP, Port: 67}); err != nil {
			return err
		}
		broadcast, err = server4.NewIPv4UDPConn(ifname, &net.UDPAddr{IP: net.IPv4bcast, Port: 67})
		return err
	})
	if err != nil {
		t.Fatalf("starting DHCP server: %v", err)
	}
	// Replies go from the unicast socket, whose source address is the
	// server's.
	s.reply = unicast
	for _, l := range []struct {
		conn      *net.UDPConn
		broadcast bool
	}{{unicast, false}, {broadcast, true}} {
		srv, err := server4.NewServer("", nil, s.handler(l.broadcast), server4.WithConn(l.conn))
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve()
		t.Cleanup(func() { srv.Close() })
	}
	return s
}

func (s *dhcpServer) setAnswering(answering bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answering = answering
}

func (s *dhcpServer) requests() []dhcpRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]dhcpRequest(nil), s.seen...)
}

func (s *dhcpServer) lastACKAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastACK
}

func (s *dhcpServer) handler(broadcast bool) server4.Handler {
	return func(_ net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
		if m.OpCode != dhcpv4.OpcodeBootRequest {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.seen = append(s.seen, dhcpRequest{
			typ:         m.MessageType(),
			broadcast:   broadcast,
			clientIP:    m.ClientIPAddr,
			vendorClass: m.ClassIdentifier(),
			at:          time.Now(),
		})
		if !s.answering {
			return
		}
		var typ dhcpv4.MessageType
		switch m.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			typ = dhcpv4.MessageTypeOffer
		case dhcpv4.MessageTypeRequest:
			typ = dhcpv4.MessageTypeAck
			if req := m.RequestedIPAddress(); req != nil && !req.Equal(s.clientIP) {
				typ = dhcpv4.MessageTypeNak
			}
		default:
			return
		}
		mods := []dhcpv4.Modifier{
			dhcpv4.WithMessageType(typ),
			dhcpv4.WithServerIP(s.serverIP),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.serverIP)),
		}
		if typ != dhcpv4.MessageTypeNak {
			mods = append(mods,
				dhcpv4.WithYourIP(s.clientIP),
				dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
				dhcpv4.WithLeaseTime(uint32(s.lease/time.Second)))
			for _, o := range s.options {
				mods = append(mods, dhcpv4.WithOption(o))
			}
		}
		reply, err := dhcpv4.NewReplyFromRequest(m, mods...)
		if err != nil {
			return
		}
		if _, err := s.reply.WriteTo(reply.ToBytes(), peer); err == nil && typ == dhcpv4.MessageTypeAck {
			s.lastACK = time.Now()
		}
	}
}

// startDNSUpstream runs a DNS server in ns on addr:53 answering every A
// query with answer.
func startDNSUpstream(t *testing.T, ns *netnstest.Namespace, addr, answer string) {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) {
		pc, err = net.ListenPacket("udp", net.JoinHostPort(addr, "53"))
		return err
	}); err != nil {
		t.Fatalf("starting DNS upstream: %v", err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		m.Answer = []dns.RR{&dns.A{
			Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A:   net.ParseIP(answer),
		}}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
}
