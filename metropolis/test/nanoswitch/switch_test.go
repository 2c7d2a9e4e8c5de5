package nanoswitch

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// TestTCPBetweenMachines connects two machines through the switch, on ports
// added before Run started.
func TestTCPBetweenMachines(t *testing.T) {
	s, err := New(Config{Dir: socketDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	pathA, err := s.AddPort("node0")
	if err != nil {
		t.Fatal(err)
	}
	pathB, err := s.AddPort("node1")
	if err != nil {
		t.Fatal(err)
	}
	// The port sockets listen before Run.
	a := startVM(t, pathA, macA)
	b := startVM(t, pathB, macB)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	addrA, _ := a.acquire()
	b.acquire()
	a.serveEcho(6443)
	dialCtx, cancelDial := context.WithTimeout(ctx, waitTimeout)
	defer cancelDial()
	c, err := b.dial(dialCtx, netip.AddrPortFrom(addrA, 6443))
	if err != nil {
		t.Fatalf("dialing from one machine to the other: %v", err)
	}
	defer c.Close()
	checkEcho(t, c)

	// A bulk transfer, larger than any window, arrives intact.
	payload := make([]byte, 1<<20)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	c.SetDeadline(time.Now().Add(waitTimeout))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		errc <- err
	}()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading echo of bulk transfer: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("writing bulk transfer: %v", err)
	}
	if string(got) != string(payload) {
		t.Fatal("bulk transfer came back changed")
	}
}

// TestSwitching checks that the switch learns where a MAC address is and
// stops flooding frames to it.
func TestSwitching(t *testing.T) {
	s, _ := newSwitch(t, Config{}, true)
	ports := make([]*rawPort, 3)
	for i, name := range []string{"a", "b", "c"} {
		path, err := s.AddPort(name)
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = dialPort(t, path)
	}
	waitConnected(t, s, "a", "b", "c")
	macOf := func(i int) tcpip.LinkAddress { return tcpip.LinkAddress([]byte{2, 0, 0, 0, 1, byte(i)}) }
	frame := func(src, dst tcpip.LinkAddress, payload string) []byte {
		f := make([]byte, header.EthernetMinimumSize+len(payload))
		header.Ethernet(f).Encode(&header.EthernetFields{SrcAddr: src, DstAddr: dst, Type: 0x88b5})
		copy(f[header.EthernetMinimumSize:], payload)
		return f
	}
	// The router may send frames of its own; the test's frames have their
	// own EtherType.
	ours := func(f []byte) bool { return header.Ethernet(f).Type() == 0x88b5 }
	withPayload := func(payload string) func([]byte) bool {
		return func(f []byte) bool { return ours(f) && string(f[header.EthernetMinimumSize:]) == payload }
	}

	// c is not known yet: the frame is flooded, also to b.
	ports[0].send(t, frame(macOf(0), macOf(2), "unknown"))
	ports[1].receive(t, withPayload("unknown"))
	ports[2].receive(t, withPayload("unknown"))
	// Now c talks, and the switch learns where it is.
	ports[2].send(t, frame(macOf(2), macOf(0), "reply"))
	ports[0].receive(t, withPayload("reply"))
	// a's next frame to c goes to c only: b sees the broadcast sent after it
	// first.
	ports[0].send(t, frame(macOf(0), macOf(2), "known"))
	ports[2].receive(t, withPayload("known"))
	ports[0].send(t, frame(macOf(0), header.EthernetBroadcastAddress, "broadcast"))
	if f := ports[1].receive(t, ours); string(f[header.EthernetMinimumSize:]) != "broadcast" {
		t.Errorf("port b got %q, want only the broadcast", f[header.EthernetMinimumSize:])
	}
	ports[2].receive(t, withPayload("broadcast"))
}

// TestForwardingDatabase checks what the switch learns from the source
// addresses guests send.
func TestForwardingDatabase(t *testing.T) {
	s, _ := newSwitch(t, Config{}, false)
	p, q := newPort("p"), newPort("q")
	from := func(port *port, src tcpip.LinkAddress) {
		f := make([]byte, header.EthernetMinimumSize)
		header.Ethernet(f).Encode(&header.EthernetFields{SrcAddr: src, DstAddr: header.EthernetBroadcastAddress, Type: 0x88b5})
		s.forward(port, f)
	}
	learnt := func(mac tcpip.LinkAddress) *port {
		s.fdbMu.Lock()
		defer s.fdbMu.Unlock()
		return s.fdb[string(mac)]
	}
	macOf := func(i int) tcpip.LinkAddress {
		return tcpip.LinkAddress([]byte{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)})
	}

	from(p, routerMAC)
	if got := learnt(routerMAC); got != s.routerPort {
		t.Errorf("a guest claiming the router's address moved it to port %q", got.name)
	}
	from(p, "\x01\x00\x5e\x00\x00\x01")
	if got := learnt("\x01\x00\x5e\x00\x00\x01"); got != nil {
		t.Errorf("a group address was learnt on port %q", got.name)
	}
	for i := range fdbCapacity + 10 {
		from(p, macOf(i))
	}
	s.fdbMu.Lock()
	size := len(s.fdb)
	s.fdbMu.Unlock()
	if size != fdbCapacity {
		t.Errorf("forwarding database holds %d addresses, want its capacity %d", size, fdbCapacity)
	}
	// A known address still moves when the database is full.
	from(q, macOf(0))
	if got := learnt(macOf(0)); got != q {
		t.Errorf("address that moved is on port %q, want q", got.name)
	}
}

// TestPortReconnect checks that a new connection to a port replaces the old
// one, as when qemu restarts.
func TestPortReconnect(t *testing.T) {
	s, _ := newSwitch(t, Config{}, true)
	path, err := s.AddPort("node0")
	if err != nil {
		t.Fatal(err)
	}
	old := dialPort(t, path)
	waitConnected(t, s, "node0")
	dialPort(t, path)
	old.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := io.ReadAll(old); err != nil {
		t.Errorf("old connection ended with %v, want EOF", err)
	}
}

func TestAddPortErrors(t *testing.T) {
	s, _ := newSwitch(t, Config{}, false)
	if _, err := s.AddPort("node0"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, port, wantErr string
	}{
		{"duplicate", "node0", "already exists"},
		{"empty", "", "not made of"},
		{"upper case", "Node0", "not made of"},
		{"path", "../node0", "not made of"},
		{"dot", "node.0", "not made of"},
		{"leading dash", "-node", "not made of"},
		{"too long for a socket path", strings.Repeat("n", 120), "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.AddPort(tc.port); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("AddPort(%q): %v, want error with %q", tc.port, err, tc.wantErr)
			}
		})
	}
}

func TestAddPortAfterStop(t *testing.T) {
	s, stop := newSwitch(t, Config{}, true)
	stop()
	if _, err := s.AddPort("late"); err == nil {
		t.Error("AddPort on a stopped switch succeeded")
	}
	if err := s.Run(t.Context()); err == nil {
		t.Error("second Run succeeded")
	}
}

func TestNewErrors(t *testing.T) {
	dir := socketDir(t)
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no directory", Config{Dir: filepath.Join(dir, "missing")}, "socket directory"},
		{"directory is a file", Config{Dir: file}, "not a directory"},
		{"IPv6 subnet", Config{Dir: dir, Subnet: netip.MustParsePrefix("fd00::/64")}, "not an IPv4 network"},
		{"subnet too small", Config{Dir: dir, Subnet: netip.MustParsePrefix("10.1.0.0/31")}, "not an IPv4 network"},
		{"subnet with host bits", Config{Dir: dir, Subnet: netip.MustParsePrefix("10.1.0.5/24")}, "not an IPv4 network"},
		{"short lease", Config{Dir: dir, LeaseTime: time.Millisecond}, "lease time"},
		{"negative lease", Config{Dir: dir, LeaseTime: -time.Second}, "lease time"},
		{"endless lease", Config{Dir: dir, LeaseTime: 200 * 365 * 24 * time.Hour}, "lease time"},
		{"bad SOCKS address", Config{Dir: dir, SOCKSAddress: "nowhere"}, "SOCKS"},
		{"pcap in a missing directory", Config{Dir: dir, PcapPath: filepath.Join(dir, "missing", "x.pcap")}, "pcap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if err == nil {
				s.Run(canceledContext())
				t.Fatalf("New succeeded, want error with %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New: %v, want error with %q", err, tc.wantErr)
			}
		})
	}
}

func canceledContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// TestNewDefaults checks the defaults of a zero Config.
func TestNewDefaults(t *testing.T) {
	s, _ := newSwitch(t, Config{}, false)
	if got, want := s.RouterAddr(), netip.MustParseAddr("10.1.0.1"); got != want {
		t.Errorf("RouterAddr() = %v, want %v", got, want)
	}
	addr, err := netip.ParseAddrPort(s.SOCKSAddr())
	if err != nil || addr.Addr() != netip.MustParseAddr("127.0.0.1") || addr.Port() == 0 {
		t.Errorf("SOCKSAddr() = %q, want 127.0.0.1 and a port", s.SOCKSAddr())
	}
	// The SOCKS proxy listens before Run.
	c, err := net.Dial("tcp", s.SOCKSAddr())
	if err != nil {
		t.Errorf("SOCKS proxy does not listen before Run: %v", err)
	} else {
		c.Close()
	}
	if s.dhcp.leaseTime != 30*time.Second {
		t.Errorf("lease time is %v, want 30s", s.dhcp.leaseTime)
	}
}

// TestRunCancelled checks that Run returns nil when its context ends.
func TestRunCancelled(t *testing.T) {
	s, err := New(Config{Dir: socketDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	path, err := s.AddPort("node0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(canceledContext()); err != nil {
		t.Errorf("Run: %v", err)
	}
	// Everything is closed.
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("port socket after Run: %v, want it removed", err)
	}
	if c, err := net.Dial("tcp", s.SOCKSAddr()); err == nil {
		c.Close()
		t.Error("SOCKS proxy still listens after Run")
	}
}

// FuzzForward feeds the switch frames as a machine could send them: the
// switch, its DHCP server and its router's stack must take anything.
func FuzzForward(f *testing.F) {
	s, _ := newSwitch(f, Config{}, false)
	src := newPort("fuzz")
	arpRequest := make([]byte, header.EthernetMinimumSize+header.ARPSize)
	header.Ethernet(arpRequest).Encode(&header.EthernetFields{SrcAddr: "\x02\x00\x00\x00\x00\x0a", DstAddr: header.EthernetBroadcastAddress, Type: header.ARPProtocolNumber})
	arp := header.ARP(arpRequest[header.EthernetMinimumSize:])
	arp.SetIPv4OverEthernet()
	arp.SetOp(header.ARPRequest)
	copy(arp.HardwareAddressSender(), "\x02\x00\x00\x00\x00\x0a")
	copy(arp.ProtocolAddressSender(), []byte{10, 1, 0, 2})
	copy(arp.ProtocolAddressTarget(), []byte{10, 1, 0, 1})
	f.Add(arpRequest)
	f.Add(dhcpRequestFrame(f))
	f.Add(dhcpRequestFrame(f)[:40])
	f.Add(udpFrame("\x02\x00\x00\x00\x00\x0a", routerMAC, netip.MustParseAddr("10.1.0.2"), s.RouterAddr(), 1234, 7, []byte("ping")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		s.forward(src, frame)
		for len(s.routerPort.egress) > 0 {
			s.toRouter((<-s.routerPort.egress).data)
		}
		s.router.link.Drain()
	})
}
