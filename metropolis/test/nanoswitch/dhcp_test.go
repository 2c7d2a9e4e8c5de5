package nanoswitch

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

const (
	macA = "02:00:00:00:00:0a"
	macB = "02:00:00:00:00:0b"
)

// TestDHCP runs DHCP between machines and the switch, over its ports.
func TestDHCP(t *testing.T) {
	s, _ := newSwitch(t, Config{}, true)
	pathA, err := s.AddPort("node0")
	if err != nil {
		t.Fatal(err)
	}
	pathB, err := s.AddPort("node1")
	if err != nil {
		t.Fatal(err)
	}
	a := startVM(t, pathA, macA)
	b := startVM(t, pathB, macB)

	addrA, ack := a.acquire()
	if want := netip.MustParseAddr("10.1.0.2"); addrA != want {
		t.Errorf("first machine got %v, want %v", addrA, want)
	}
	checkLeaseOptions(t, ack.msg)
	// Without the broadcast flag, the answer goes to the client's MAC and
	// offered address, from the router.
	if ack.dstMAC != a.mac || ack.dstIP != addrA || ack.srcMAC != routerMAC {
		t.Errorf("ACK went from %v to %v/%v, want from %v to %v/%v", ack.srcMAC, ack.dstMAC, ack.dstIP, routerMAC, a.mac, addrA)
	}

	addrB, _ := b.acquire()
	if want := netip.MustParseAddr("10.1.0.3"); addrB != want {
		t.Errorf("second machine got %v, want %v", addrB, want)
	}
	wantLeases := map[string]netip.Addr{macA: addrA, macB: addrB}
	if diff := cmp.Diff(wantLeases, s.Leases(), cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("Leases() differs (-want +got):\n%s", diff)
	}

	t.Run("renewal", func(t *testing.T) {
		renew, err := dhcpv4.NewRenewFromAck(ack.msg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.exchange(renew, routerMAC, addrA, s.RouterAddr())
		if err != nil {
			t.Fatal(err)
		}
		if got.msg.MessageType() != dhcpv4.MessageTypeAck || !got.msg.YourIPAddr.Equal(addrA.AsSlice()) {
			t.Fatalf("answer to renewal is %v for %v, want ACK for %v", got.msg.MessageType(), got.msg.YourIPAddr, addrA)
		}
		if got.dstIP != addrA || got.dstMAC != a.mac {
			t.Errorf("renewal ACK went to %v/%v, want %v/%v", got.dstMAC, got.dstIP, a.mac, addrA)
		}
	})
	t.Run("wrong address", func(t *testing.T) {
		req, err := dhcpv4.New(
			dhcpv4.WithHwAddr(net.HardwareAddr(b.mac)),
			dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 1, 0, 9))),
		)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.exchange(req, header.EthernetBroadcastAddress, unspecified4, broadcastIP)
		if err != nil {
			t.Fatal(err)
		}
		if got.msg.MessageType() != dhcpv4.MessageTypeNak {
			t.Fatalf("answer to a request for another machine's address is %v, want NAK", got.msg.MessageType())
		}
		if got.dstMAC != header.EthernetBroadcastAddress || got.dstIP != broadcastIP {
			t.Errorf("NAK went to %v/%v, want broadcast", got.dstMAC, got.dstIP)
		}
	})
	t.Run("broadcast flag", func(t *testing.T) {
		got, err := b.discover(dhcpv4.WithBroadcast(true))
		if err != nil {
			t.Fatal(err)
		}
		if got.dstMAC != header.EthernetBroadcastAddress || got.dstIP != broadcastIP {
			t.Errorf("OFFER to a client asking for broadcast went to %v/%v", got.dstMAC, got.dstIP)
		}
	})
	t.Run("same MAC after reconnect", func(t *testing.T) {
		a.stop()
		again := startVM(t, pathA, macA)
		addr, _ := again.acquire()
		if addr != addrA {
			t.Errorf("machine got %v after reconnecting, want %v again", addr, addrA)
		}
	})
}

func checkLeaseOptions(t *testing.T, msg *dhcpv4.DHCPv4) {
	t.Helper()
	router := net.IPv4(10, 1, 0, 1).To4()
	if got := msg.SubnetMask(); got.String() != net.CIDRMask(24, 32).String() {
		t.Errorf("subnet mask is %v, want /24", got)
	}
	if got := msg.Router(); len(got) != 1 || !got[0].Equal(router) {
		t.Errorf("routers are %v, want [%v]", got, router)
	}
	if got := msg.IPAddressLeaseTime(0); got != 30*time.Second {
		t.Errorf("lease time is %v, want 30s", got)
	}
	if got := msg.ServerIdentifier(); !got.Equal(router) {
		t.Errorf("server identifier is %v, want %v", got, router)
	}
}

func testDHCPServer() *dhcpServer {
	router := netip.MustParseAddr("10.1.0.1")
	return &dhcpServer{
		leases:    newLeasePool(defaultSubnet, router.Next()),
		routerMAC: routerMAC,
		routerIP:  router,
		netmask:   net.CIDRMask(24, 32),
		leaseTime: defaultLeaseTime,
		log:       slog.New(slog.DiscardHandler),
	}
}

// TestDHCPRespond checks the server's answer to each kind of message. The
// server allocated 10.1.0.2 to macA before each case.
func TestDHCPRespond(t *testing.T) {
	hwA, _ := net.ParseMAC(macA)
	hwB, _ := net.ParseMAC(macB)
	msg := func(hw net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(hw)}, mods...)...)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	request := dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest)
	requested := func(ip string) dhcpv4.Modifier {
		return dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(ip)))
	}
	for _, tc := range []struct {
		name     string
		req      *dhcpv4.DHCPv4
		wantType dhcpv4.MessageType // MessageTypeNone: no answer
		wantAddr string
		wantErr  bool
	}{
		{"discover by a known client", msg(hwA, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover)), dhcpv4.MessageTypeOffer, "10.1.0.2", false},
		{"discover by a new client", msg(hwB, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover)), dhcpv4.MessageTypeOffer, "10.1.0.3", false},
		{"request for the leased address", msg(hwA, request, requested("10.1.0.2")), dhcpv4.MessageTypeAck, "10.1.0.2", false},
		{"request for another address", msg(hwA, request, requested("10.1.0.3")), dhcpv4.MessageTypeNak, "0.0.0.0", false},
		{"request without any address", msg(hwA, request), dhcpv4.MessageTypeNak, "0.0.0.0", false},
		{"request by a new client for its next address", msg(hwB, request, requested("10.1.0.3")), dhcpv4.MessageTypeAck, "10.1.0.3", false},
		{"renewal", msg(hwA, request, dhcpv4.WithClientIP(net.IPv4(10, 1, 0, 2))), dhcpv4.MessageTypeAck, "10.1.0.2", false},
		{"request to another server", msg(hwA, request, requested("10.1.0.2"), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 1, 0, 99)))), dhcpv4.MessageTypeNone, "", false},
		{"release", msg(hwA, dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease)), dhcpv4.MessageTypeNone, "", false},
		{"decline", msg(hwA, dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline)), dhcpv4.MessageTypeNone, "", false},
		{"server message", msg(hwA, dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer), func(d *dhcpv4.DHCPv4) { d.OpCode = dhcpv4.OpcodeBootReply }), dhcpv4.MessageTypeNone, "", false},
		{"inform", msg(hwA, dhcpv4.WithMessageType(dhcpv4.MessageTypeInform)), dhcpv4.MessageTypeNone, "", true},
		{"no message type", msg(hwA), dhcpv4.MessageTypeNone, "", true},
		{"not Ethernet", msg(hwA, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithHWType(iana.HWTypeInfiniband)), dhcpv4.MessageTypeNone, "", true},
		{"relayed", msg(hwA, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithRelay(net.IPv4(10, 9, 0, 1))), dhcpv4.MessageTypeNone, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testDHCPServer()
			if _, _, err := d.leases.allocate(macA); err != nil {
				t.Fatal(err)
			}
			resp, err := d.respond(tc.req)
			if (err != nil) != tc.wantErr {
				t.Fatalf("respond: error %v, want error: %v", err, tc.wantErr)
			}
			if tc.wantType == dhcpv4.MessageTypeNone {
				if resp != nil {
					t.Fatalf("answered %v, want no answer", resp.MessageType())
				}
				return
			}
			if resp == nil {
				t.Fatalf("no answer, want %v", tc.wantType)
			}
			if resp.MessageType() != tc.wantType || resp.YourIPAddr.String() != tc.wantAddr {
				t.Errorf("answer is %v for %v, want %v for %v", resp.MessageType(), resp.YourIPAddr, tc.wantType, tc.wantAddr)
			}
			if resp.TransactionID != tc.req.TransactionID || resp.OpCode != dhcpv4.OpcodeBootReply {
				t.Errorf("answer has transaction %v and opcode %v, want %v and BootReply", resp.TransactionID, resp.OpCode, tc.req.TransactionID)
			}
			if tc.wantType != dhcpv4.MessageTypeNak {
				checkLeaseOptions(t, resp)
			}
		})
	}
}

func TestLeasePoolExhaustion(t *testing.T) {
	// A /30 holds the router and one machine.
	pool := newLeasePool(netip.MustParsePrefix("10.1.0.0/30"), netip.MustParseAddr("10.1.0.2"))
	if addr, _, err := pool.allocate(macA); err != nil || addr != netip.MustParseAddr("10.1.0.2") {
		t.Fatalf("first allocation: %v, %v", addr, err)
	}
	if addr, _, err := pool.allocate(macB); err == nil {
		t.Fatalf("second allocation in a /30 gave %v, want an error", addr)
	}
	if addr, isNew, err := pool.allocate(macA); err != nil || isNew {
		t.Fatalf("known client after exhaustion: %v (new: %v), %v", addr, isNew, err)
	}
}

// dhcpRequestFrame builds a frame as a DHCP client without an address
// sends it.
func dhcpRequestFrame(t testing.TB, mods ...dhcpv4.Modifier) []byte {
	hw, _ := net.ParseMAC(macA)
	// A fixed transaction ID keeps the frame, and so its checksums, fixed.
	mods = append([]dhcpv4.Modifier{dhcpv4.WithTransactionID(dhcpv4.TransactionID{1, 2, 3, 4})}, mods...)
	msg, err := dhcpv4.NewDiscovery(hw, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return udpFrame(tcpip.LinkAddress(hw), header.EthernetBroadcastAddress, unspecified4, broadcastIP, dhcpClientPort, dhcpServerPort, msg.ToBytes())
}

// TestDHCPFrameFiltering checks which frames the DHCP server takes.
func TestDHCPFrameFiltering(t *testing.T) {
	discover := dhcpRequestFrame(t)
	corrupt := func(offset int) []byte {
		f := append([]byte(nil), discover...)
		f[offset] ^= 0xff
		return f
	}
	const ipOffset = header.EthernetMinimumSize
	const udpOffset = ipOffset + header.IPv4MinimumSize
	for _, tc := range []struct {
		name          string
		frame         []byte
		wantForServer bool
		wantReply     bool
	}{
		{"discover", discover, true, true},
		{"discover without UDP checksum", func() []byte {
			f := append([]byte(nil), discover...)
			f[udpOffset+6], f[udpOffset+7] = 0, 0
			return f
		}(), true, true},
		{"bad UDP checksum", corrupt(udpOffset + 6), false, false},
		{"bad IP checksum", corrupt(ipOffset + 10), false, false},
		{"other UDP port", corrupt(udpOffset + 3), false, false},
		{"other destination MAC", corrupt(0), false, false},
		{"not IPv4", corrupt(12), false, false},
		{"truncated", discover[:len(discover)-10], false, false},
		{"malformed DHCP", func() []byte {
			return udpFrame(routerMAC, header.EthernetBroadcastAddress, unspecified4, broadcastIP, dhcpClientPort, dhcpServerPort, []byte("not DHCP"))
		}(), true, false},
		{"runt", discover[:10], false, false},
		{"empty", nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reply, forServer := testDHCPServer().handleFrame(tc.frame)
			if forServer != tc.wantForServer || (reply != nil) != tc.wantReply {
				t.Errorf("handleFrame: reply %v, for server %v; want reply %v, for server %v", reply != nil, forServer, tc.wantReply, tc.wantForServer)
			}
			if reply != nil {
				if _, ok := parseDHCPToClient(reply); !ok {
					t.Errorf("reply is not a DHCP message to a client")
				}
			}
		})
	}
}

// FuzzDHCPFrame feeds the DHCP server frames as a guest could send them: it
// must not panic, and whatever it answers must be a well-formed DHCP reply.
func FuzzDHCPFrame(f *testing.F) {
	f.Add(dhcpRequestFrame(f))
	f.Add(dhcpRequestFrame(f, dhcpv4.WithBroadcast(true)))
	f.Add(dhcpRequestFrame(f, dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 1, 0, 2)))))
	f.Add(dhcpRequestFrame(f, dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithClientIP(net.IPv4(10, 1, 0, 2))))
	f.Add(dhcpRequestFrame(f, dhcpv4.WithHwAddr(net.HardwareAddr{1, 2, 3})))
	f.Add(dhcpRequestFrame(f)[:60])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		d := testDHCPServer()
		reply, forServer := d.handleFrame(frame)
		if reply == nil {
			return
		}
		if !forServer {
			t.Fatal("answered a frame that was not for the server")
		}
		r, ok := parseDHCPToClient(reply)
		if !ok {
			t.Fatalf("reply is not a DHCP message to a client: %x", reply)
		}
		if r.msg.OpCode != dhcpv4.OpcodeBootReply || r.srcMAC != routerMAC {
			t.Fatalf("reply has opcode %v from %v", r.msg.OpCode, r.srcMAC)
		}
	})
}
