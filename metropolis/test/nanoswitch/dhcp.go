package nanoswitch

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

const (
	dhcpServerPort = 67
	dhcpClientPort = 68
)

// leasePool hands out the addresses of a subnet in order, one per MAC
// address, and never takes one back: a machine that restarts, or whose lease
// ran out while it was stopped, gets its address again, so tests can rely on
// the order in which machines first asked.
type leasePool struct {
	mu    sync.Mutex
	next  netip.Addr
	last  netip.Addr
	byMAC map[string]netip.Addr
}

// newLeasePool returns a pool of the addresses after first up to the last
// one before the subnet's broadcast address.
func newLeasePool(subnet netip.Prefix, first netip.Addr) *leasePool {
	broadcast := subnet.Addr().As4()
	for i := subnet.Bits(); i < 32; i++ {
		broadcast[i/8] |= 0x80 >> (i % 8)
	}
	return &leasePool{
		next:  first,
		last:  netip.AddrFrom4(broadcast).Prev(),
		byMAC: make(map[string]netip.Addr),
	}
}

// allocate returns the address of mac, allocating the next free one if mac
// has none yet (then isNew is true).
func (l *leasePool) allocate(mac string) (addr netip.Addr, isNew bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if addr, ok := l.byMAC[mac]; ok {
		return addr, false, nil
	}
	if l.next.Compare(l.last) > 0 {
		return netip.Addr{}, false, fmt.Errorf("all %d addresses are leased", len(l.byMAC))
	}
	addr = l.next
	l.next = l.next.Next()
	l.byMAC[mac] = addr
	return addr, true, nil
}

func (l *leasePool) snapshot() map[string]netip.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	leases := make(map[string]netip.Addr, len(l.byMAC))
	for mac, addr := range l.byMAC {
		leases[mac] = addr
	}
	return leases
}

// dhcpServer answers DHCPv4 messages that reach the router port, directly
// at the Ethernet level: a client without an address sends from 0.0.0.0 to
// the broadcast address and must be answered at its MAC address, which a
// socket of the userspace stack can do neither of.
type dhcpServer struct {
	leases    *leasePool
	routerMAC tcpip.LinkAddress
	routerIP  netip.Addr
	netmask   net.IPMask
	leaseTime time.Duration
	log       *slog.Logger
}

// handleFrame answers frame if it is a UDP datagram to the DHCP server port
// of the router (or broadcast). forServer tells whether it was, in which case
// nothing else must see it; reply is the answer, or nil if there is none.
// frame comes from a guest, so anything is possible and handled.
func (d *dhcpServer) handleFrame(frame []byte) (reply []byte, forServer bool) {
	payload, srcMAC, ok := d.serverDatagram(frame)
	if !ok {
		return nil, false
	}
	req, err := dhcpv4.FromBytes(payload)
	if err != nil {
		d.log.Debug("DHCP: ignoring malformed message", "from", net.HardwareAddr(srcMAC), "err", err)
		return nil, true
	}
	resp, err := d.respond(req)
	if err != nil {
		d.log.Warn("DHCP: not answering", "mac", req.ClientHWAddr, "type", req.MessageType(), "err", err)
		return nil, true
	}
	if resp == nil {
		return nil, true
	}
	dstMAC, dstIP := replyDestination(req, resp)
	return udpFrame(d.routerMAC, dstMAC, d.routerIP, dstIP, dhcpServerPort, dhcpClientPort, resp.ToBytes()), true
}

// serverDatagram returns the UDP payload and Ethernet source of frame if it
// is an unfragmented, intact IPv4 UDP datagram to the DHCP server port,
// addressed to the router or broadcast.
func (d *dhcpServer) serverDatagram(frame []byte) (payload []byte, srcMAC tcpip.LinkAddress, ok bool) {
	if len(frame) < header.EthernetMinimumSize {
		return nil, "", false
	}
	eth := header.Ethernet(frame)
	if eth.Type() != header.IPv4ProtocolNumber {
		return nil, "", false
	}
	if dst := eth.DestinationAddress(); dst != d.routerMAC && dst != header.EthernetBroadcastAddress {
		return nil, "", false
	}
	ip := header.IPv4(frame[header.EthernetMinimumSize:])
	if !ip.IsValid(len(ip)) || !ip.IsChecksumValid() {
		return nil, "", false
	}
	if ip.TransportProtocol() != header.UDPProtocolNumber || ip.More() || ip.FragmentOffset() != 0 {
		return nil, "", false
	}
	if dst := ip.DestinationAddress(); dst != tcpipAddr(d.routerIP) && dst != header.IPv4Broadcast {
		return nil, "", false
	}
	udp := header.UDP(ip[ip.HeaderLength():ip.TotalLength()])
	if len(udp) < header.UDPMinimumSize || udp.DestinationPort() != dhcpServerPort {
		return nil, "", false
	}
	if n := int(udp.Length()); n < header.UDPMinimumSize || n > len(udp) {
		return nil, "", false
	}
	udp = udp[:udp.Length()]
	// A zero checksum means the sender did not compute one.
	if udp.Checksum() != 0 && !udp.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksum.Checksum(udp.Payload(), 0)) {
		return nil, "", false
	}
	return udp.Payload(), eth.SourceAddress(), true
}

// respond returns the answer to req, or nil if it needs none.
func (d *dhcpServer) respond(req *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, error) {
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return nil, nil
	}
	if req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		return nil, fmt.Errorf("hardware type %v with %d-byte address is not Ethernet", req.HWType, len(req.ClientHWAddr))
	}
	if !req.GatewayIPAddr.IsUnspecified() {
		return nil, fmt.Errorf("relayed by %v, but the test network has no relays", req.GatewayIPAddr)
	}
	mac := req.ClientHWAddr.String()
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		addr, isNew, err := d.leases.allocate(mac)
		if err != nil {
			return nil, err
		}
		if isNew {
			d.log.Info("DHCP: allocated address", "mac", mac, "addr", addr)
		}
		return d.reply(req, dhcpv4.MessageTypeOffer, addr)
	case dhcpv4.MessageTypeRequest:
		if sid := req.ServerIdentifier(); sid != nil && !sid.Equal(d.routerIP.AsSlice()) {
			// The client took another server's offer.
			return nil, nil
		}
		requested := req.RequestedIPAddress()
		if requested == nil {
			// Renewing or rebinding: the client asks for the address it has.
			requested = req.ClientIPAddr
		}
		addr, isNew, err := d.leases.allocate(mac)
		if err != nil {
			return nil, err
		}
		if !requested.Equal(addr.AsSlice()) {
			d.log.Info("DHCP: refusing request for another address", "mac", mac, "requested", requested, "leased", addr)
			return d.reply(req, dhcpv4.MessageTypeNak, netip.Addr{})
		}
		if renewal := !req.ClientIPAddr.IsUnspecified() && !isNew; renewal {
			d.log.Debug("DHCP: renewed lease", "mac", mac, "addr", addr)
		} else {
			d.log.Info("DHCP: gave lease", "mac", mac, "addr", addr, "leaseTime", d.leaseTime)
		}
		return d.reply(req, dhcpv4.MessageTypeAck, addr)
	case dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeDecline:
		d.log.Info("DHCP: keeping address after client message", "mac", mac, "type", req.MessageType())
		return nil, nil
	default:
		return nil, fmt.Errorf("message type %v is not served", req.MessageType())
	}
}

// reply builds an answer of type t to req; addr is the client's address,
// unused for a NAK.
func (d *dhcpServer) reply(req *dhcpv4.DHCPv4, t dhcpv4.MessageType, addr netip.Addr) (*dhcpv4.DHCPv4, error) {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(t),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(d.routerIP.AsSlice())),
	}
	if t != dhcpv4.MessageTypeNak {
		mods = append(mods,
			dhcpv4.WithYourIP(addr.AsSlice()),
			dhcpv4.WithNetmask(d.netmask),
			dhcpv4.WithOption(dhcpv4.OptRouter(d.routerIP.AsSlice())),
			dhcpv4.WithLeaseTime(uint32(d.leaseTime/time.Second)),
		)
	}
	resp, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		return nil, fmt.Errorf("building %v: %w", t, err)
	}
	return resp, nil
}

// replyDestination says where resp goes (RFC 2131, section 4.1): a NAK or
// an answer the client asked to be broadcast to everyone, an answer to a
// client that has an address to that address, any other to the offered
// address at the client's MAC address (the client accepts it before it
// configures the address, and cannot answer ARP for it).
func replyDestination(req, resp *dhcpv4.DHCPv4) (tcpip.LinkAddress, netip.Addr) {
	broadcast := netip.AddrFrom4([4]byte{255, 255, 255, 255})
	chaddr := tcpip.LinkAddress(req.ClientHWAddr)
	switch {
	case resp.MessageType() == dhcpv4.MessageTypeNak || req.IsBroadcast():
		return header.EthernetBroadcastAddress, broadcast
	case !req.ClientIPAddr.IsUnspecified():
		if ciaddr, ok := netip.AddrFromSlice(req.ClientIPAddr.To4()); ok {
			return chaddr, ciaddr
		}
		return header.EthernetBroadcastAddress, broadcast
	default:
		yiaddr, ok := netip.AddrFromSlice(resp.YourIPAddr.To4())
		if !ok {
			return header.EthernetBroadcastAddress, broadcast
		}
		return chaddr, yiaddr
	}
}

// udpFrame builds an Ethernet frame holding an IPv4 UDP datagram.
func udpFrame(srcMAC, dstMAC tcpip.LinkAddress, src, dst netip.Addr, srcPort, dstPort uint16, payload []byte) []byte {
	const headers = header.EthernetMinimumSize + header.IPv4MinimumSize + header.UDPMinimumSize
	frame := make([]byte, headers+len(payload))
	header.Ethernet(frame).Encode(&header.EthernetFields{
		SrcAddr: srcMAC,
		DstAddr: dstMAC,
		Type:    header.IPv4ProtocolNumber,
	})
	ip := header.IPv4(frame[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(ip)),
		TTL:         64,
		Protocol:    uint8(header.UDPProtocolNumber),
		SrcAddr:     tcpipAddr(src),
		DstAddr:     tcpipAddr(dst),
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	udp := header.UDP(ip[header.IPv4MinimumSize:])
	udp.Encode(&header.UDPFields{
		SrcPort: srcPort,
		DstPort: dstPort,
		Length:  uint16(len(udp)),
	})
	copy(udp.Payload(), payload)
	xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, tcpipAddr(src), tcpipAddr(dst), udp.Length())
	xsum = checksum.Checksum(payload, xsum)
	xsum = ^udp.CalculateChecksum(xsum)
	if xsum == 0 {
		// Zero means "no checksum"; its one's complement twin stands in.
		xsum = 0xffff
	}
	udp.SetChecksum(xsum)
	return frame
}

func tcpipAddr(a netip.Addr) tcpip.Address {
	return tcpip.AddrFrom4(a.As4())
}
