package nanoswitch

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// routerMAC is the MAC address of the switch's own interface: unicast and
// locally administered.
var routerMAC = tcpip.LinkAddress("\x02\x6e\x73\x77\x00\x01")

const (
	routerNIC tcpip.NICID = 1
	// routerLinkMTU is the largest frame the router sends: an Ethernet
	// header and 1500 bytes.
	routerLinkMTU = header.EthernetMinimumSize + 1500
	// routerQueueLen is how many frames the stack may send before the
	// switch takes them.
	routerQueueLen = 512
)

// router is the switch's own interface, in a userspace network stack.
type router struct {
	stack *stack.Stack
	// link carries Ethernet frames between the stack and the switch.
	link *channel.Endpoint
}

func newRouter(subnet netip.Prefix, addr netip.Addr) (*router, error) {
	st := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	r := &router{stack: st, link: channel.New(routerQueueLen, routerLinkMTU, routerMAC)}
	sack := tcpip.TCPSACKEnabled(true)
	if err := st.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
		r.close()
		return nil, fmt.Errorf("enabling TCP SACK: %s", err)
	}
	if err := st.CreateNIC(routerNIC, ethernet.New(r.link)); err != nil {
		r.close()
		return nil, fmt.Errorf("creating router interface: %s", err)
	}
	protoAddr := tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpipAddr(addr), PrefixLen: subnet.Bits()},
	}
	if err := st.AddProtocolAddress(routerNIC, protoAddr, stack.AddressProperties{}); err != nil {
		r.close()
		return nil, fmt.Errorf("adding router address: %s", err)
	}
	st.SetRouteTable([]tcpip.Route{{Destination: protoAddr.AddressWithPrefix.Subnet(), NIC: routerNIC}})
	return r, nil
}

func (r *router) close() {
	r.stack.Close()
	r.stack.Wait()
	r.link.Close()
}

// toRouter delivers a frame the switch forwarded to the router: to the DHCP
// server if it is for it, else to the stack if the router's MAC address or a
// group address is its destination, as a network card filters.
func (s *Switch) toRouter(frame []byte) {
	if reply, forServer := s.dhcp.handleFrame(frame); forServer {
		if reply != nil {
			s.forward(s.routerPort, reply)
		}
		return
	}
	dst := header.Ethernet(frame).DestinationAddress()
	if dst != routerMAC && !header.IsMulticastEthernetAddress(dst) {
		return
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
	defer pkt.DecRef()
	// The Ethernet endpoint reads the protocol from the frame's header.
	s.router.link.InjectInbound(0, pkt)
}

// fromRouter forwards the frames the stack sends until ctx is done.
func (s *Switch) fromRouter(ctx context.Context) {
	for {
		pkt := s.router.link.ReadContext(ctx)
		if pkt == nil {
			return
		}
		frame := make([]byte, 0, pkt.Size())
		for _, b := range pkt.AsSlices() {
			frame = append(frame, b...)
		}
		pkt.DecRef()
		s.forward(s.routerPort, frame)
	}
}

// dial opens a TCP connection from the router to target.
func (s *Switch) dial(ctx context.Context, target netip.AddrPort) (net.Conn, error) {
	c, err := gonet.DialContextTCP(ctx, s.router.stack, tcpip.FullAddress{
		NIC:  routerNIC,
		Addr: tcpipAddr(target.Addr()),
		Port: target.Port(),
	}, ipv4.ProtocolNumber)
	if err != nil {
		return nil, err
	}
	return c, nil
}
