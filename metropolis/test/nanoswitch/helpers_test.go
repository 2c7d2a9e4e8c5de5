package nanoswitch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
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

	"metropolis.dev/osbase/test/qemu"
)

// waitTimeout bounds every wait of the tests for something that happens
// within milliseconds when all is well.
const waitTimeout = 20 * time.Second

// pollInterval is how often pollUntil checks a condition.
const pollInterval = 10 * time.Millisecond

// socketDir returns a new directory for port sockets, short enough for any
// test name (t.TempDir's path grows with it).
func socketDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nanoswitch")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// newSwitch creates a switch in a new socket directory and, if run is set,
// runs it. The returned stop ends Run (or, if the switch was not running,
// runs it with a done context to release it) and checks its result; it runs
// when the test ends if not before.
func newSwitch(t testing.TB, cfg Config, run bool) (*Switch, func()) {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = socketDir(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	if run {
		go func() { done <- s.Run(ctx) }()
	}
	stop := sync.OnceFunc(func() {
		cancel()
		if !run {
			done <- s.Run(ctx)
		}
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(stop)
	return s, stop
}

// rawPort is a connection to a port that sends and receives frames itself.
type rawPort struct {
	net.Conn
}

func dialPort(t testing.TB, path string) *rawPort {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("connecting to port: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawPort{c}
}

// waitConnected waits until the switch serves a connection on each of the
// named ports: before, it drops the frames for them.
func waitConnected(t testing.TB, s *Switch, names ...string) {
	t.Helper()
	pollUntil(t, "ports connected", func() error {
		for _, name := range names {
			s.mu.Lock()
			p := s.ports[name]
			s.mu.Unlock()
			p.connMu.Lock()
			c := p.conn
			p.connMu.Unlock()
			if c == nil {
				return fmt.Errorf("port %q has no connection", name)
			}
		}
		return nil
	})
}

func (p *rawPort) send(t testing.TB, frame []byte) {
	t.Helper()
	if err := qemu.WriteFrame(p, frame); err != nil {
		t.Fatal(err)
	}
}

// receive returns the next frame for which match is true.
func (p *rawPort) receive(t testing.TB, match func([]byte) bool) []byte {
	t.Helper()
	p.SetReadDeadline(time.Now().Add(waitTimeout))
	defer p.SetReadDeadline(time.Time{})
	for {
		frame, err := qemu.ReadFrame(p)
		if err != nil {
			t.Fatalf("reading frame: %v", err)
		}
		if match(frame) {
			return frame
		}
	}
}

// vm plays a machine on a port: a userspace network stack of its own, whose
// frames go through the port's connection, and a raw DHCP client.
type vm struct {
	t     testing.TB
	mac   tcpip.LinkAddress
	conn  net.Conn
	stack *stack.Stack
	link  *channel.Endpoint
	// dhcp receives the DHCP messages to the client port.
	dhcp    chan dhcpReceived
	writeMu sync.Mutex
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type dhcpReceived struct {
	msg    *dhcpv4.DHCPv4
	dstMAC tcpip.LinkAddress
	srcMAC tcpip.LinkAddress
	dstIP  netip.Addr
}

// startVM connects a machine with MAC address mac to the port socket path.
// It stops when the test ends, or earlier with stop.
func startVM(t testing.TB, path string, mac string) *vm {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("connecting to port: %v", err)
	}
	st := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	v := &vm{
		t:     t,
		mac:   tcpip.LinkAddress(hw),
		conn:  conn,
		stack: st,
		link:  channel.New(256, routerLinkMTU, tcpip.LinkAddress(hw)),
		dhcp:  make(chan dhcpReceived, 64),
	}
	if err := st.CreateNIC(1, ethernet.New(v.link)); err != nil {
		t.Fatalf("CreateNIC: %s", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	v.cancel = cancel
	v.wg.Go(v.receiveFrames)
	v.wg.Go(func() { v.sendFrames(ctx) })
	t.Cleanup(v.stop)
	return v
}

func (v *vm) stop() {
	v.cancel()
	v.conn.Close()
	v.wg.Wait()
	v.stack.Close()
	v.stack.Wait()
	v.link.Close()
}

func (v *vm) receiveFrames() {
	for {
		frame, err := qemu.ReadFrame(v.conn)
		if err != nil {
			return
		}
		if r, ok := parseDHCPToClient(frame); ok {
			select {
			case v.dhcp <- r:
			default:
			}
			continue
		}
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
		v.link.InjectInbound(0, pkt)
		pkt.DecRef()
	}
}

func (v *vm) sendFrames(ctx context.Context) {
	for {
		pkt := v.link.ReadContext(ctx)
		if pkt == nil {
			return
		}
		var frame []byte
		for _, b := range pkt.AsSlices() {
			frame = append(frame, b...)
		}
		pkt.DecRef()
		v.writeFrame(frame)
	}
}

func (v *vm) writeFrame(frame []byte) error {
	v.writeMu.Lock()
	defer v.writeMu.Unlock()
	return qemu.WriteFrame(v.conn, frame)
}

// parseDHCPToClient returns the DHCP message in frame if it is one to the
// client port.
func parseDHCPToClient(frame []byte) (dhcpReceived, bool) {
	if len(frame) < header.EthernetMinimumSize {
		return dhcpReceived{}, false
	}
	eth := header.Ethernet(frame)
	ip := header.IPv4(frame[header.EthernetMinimumSize:])
	if eth.Type() != header.IPv4ProtocolNumber || !ip.IsValid(len(ip)) || ip.TransportProtocol() != header.UDPProtocolNumber {
		return dhcpReceived{}, false
	}
	u := header.UDP(ip[ip.HeaderLength():ip.TotalLength()])
	if len(u) < header.UDPMinimumSize || u.DestinationPort() != dhcpClientPort {
		return dhcpReceived{}, false
	}
	msg, err := dhcpv4.FromBytes(u.Payload())
	if err != nil {
		return dhcpReceived{}, false
	}
	dst := ip.DestinationAddress().As4()
	return dhcpReceived{msg: msg, dstMAC: eth.DestinationAddress(), srcMAC: eth.SourceAddress(), dstIP: netip.AddrFrom4(dst)}, true
}

var (
	broadcastIP  = netip.AddrFrom4([4]byte{255, 255, 255, 255})
	unspecified4 = netip.IPv4Unspecified()
)

// exchange sends msg as the DHCP client, from src to dstMAC and dst, and
// returns the server's answer.
func (v *vm) exchange(msg *dhcpv4.DHCPv4, dstMAC tcpip.LinkAddress, src, dst netip.Addr) (dhcpReceived, error) {
	if err := v.writeFrame(udpFrame(v.mac, dstMAC, src, dst, dhcpClientPort, dhcpServerPort, msg.ToBytes())); err != nil {
		return dhcpReceived{}, err
	}
	timeout := time.After(waitTimeout)
	for {
		select {
		case r := <-v.dhcp:
			if r.msg.TransactionID == msg.TransactionID && r.msg.ClientHWAddr.String() == net.HardwareAddr(v.mac).String() {
				return r, nil
			}
		case <-timeout:
			return dhcpReceived{}, fmt.Errorf("no answer to DHCP %v", msg.MessageType())
		}
	}
}

// discover sends a DHCPDISCOVER and returns the offer.
func (v *vm) discover(mods ...dhcpv4.Modifier) (dhcpReceived, error) {
	msg, err := dhcpv4.NewDiscovery(net.HardwareAddr(v.mac), mods...)
	if err != nil {
		return dhcpReceived{}, err
	}
	return v.exchange(msg, header.EthernetBroadcastAddress, unspecified4, broadcastIP)
}

// acquire gets a lease like a booting machine, configures its address on
// the machine's stack and returns it with the ACK.
func (v *vm) acquire() (netip.Addr, dhcpReceived) {
	v.t.Helper()
	offer, err := v.discover()
	if err != nil {
		v.t.Fatal(err)
	}
	if offer.msg.MessageType() != dhcpv4.MessageTypeOffer {
		v.t.Fatalf("answer to DISCOVER is %v, want OFFER", offer.msg.MessageType())
	}
	req, err := dhcpv4.NewRequestFromOffer(offer.msg)
	if err != nil {
		v.t.Fatal(err)
	}
	ack, err := v.exchange(req, header.EthernetBroadcastAddress, unspecified4, broadcastIP)
	if err != nil {
		v.t.Fatal(err)
	}
	if ack.msg.MessageType() != dhcpv4.MessageTypeAck {
		v.t.Fatalf("answer to REQUEST is %v, want ACK", ack.msg.MessageType())
	}
	addr, ok := netip.AddrFromSlice(ack.msg.YourIPAddr.To4())
	if !ok {
		v.t.Fatalf("ACK has no address: %v", ack.msg.YourIPAddr)
	}
	ones, _ := ack.msg.SubnetMask().Size()
	pa := tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpipAddr(addr), PrefixLen: ones},
	}
	if err := v.stack.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
		v.t.Fatalf("adding address %v: %s", addr, err)
	}
	v.stack.SetRouteTable([]tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: 1}})
	return addr, ack
}

// serveEcho serves TCP on port of the machine's stack, echoing what each
// client sends.
func (v *vm) serveEcho(port uint16) {
	v.t.Helper()
	ln, err := gonet.ListenTCP(v.stack, tcpip.FullAddress{NIC: 1, Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		v.t.Fatalf("listening on %d: %v", port, err)
	}
	v.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
}

// dial connects from the machine's stack.
func (v *vm) dial(ctx context.Context, to netip.AddrPort) (net.Conn, error) {
	c, err := gonet.DialContextTCP(ctx, v.stack, tcpip.FullAddress{NIC: 1, Addr: tcpipAddr(to.Addr()), Port: to.Port()}, ipv4.ProtocolNumber)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// checkEcho sends a message over c and checks it comes back.
func checkEcho(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(waitTimeout))
	want := []byte("hello through the switch")
	if _, err := c.Write(want); err != nil {
		t.Fatalf("writing: %v", err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading echo: %v", err)
	}
	if string(got) != string(want) {
		t.Fatalf("echo is %q, want %q", got, want)
	}
}

// pollUntil calls f until it succeeds, at most every pollInterval, and fails
// the test if it still fails after waitTimeout.
func pollUntil(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		next := time.Now().Add(pollInterval)
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, waitTimeout, err)
		}
		time.Sleep(time.Until(next))
	}
}
