package nanoswitch

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/proxy"
)

// startEchoMachine runs a switch with one machine that got 10.1.0.2 by DHCP
// and echoes on TCP port 7835.
func startEchoMachine(t *testing.T) (*Switch, *vm) {
	t.Helper()
	s, _ := newSwitch(t, Config{}, true)
	path, err := s.AddPort("node0")
	if err != nil {
		t.Fatal(err)
	}
	m := startVM(t, path, macA)
	if addr, _ := m.acquire(); addr != netip.MustParseAddr("10.1.0.2") {
		t.Fatalf("machine got %v", addr)
	}
	m.serveEcho(7835)
	return s, m
}

func TestSOCKS(t *testing.T) {
	s, _ := startEchoMachine(t)
	dialer, err := proxy.SOCKS5("tcp", s.SOCKSAddr(), nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()

	c, err := dialer.(proxy.ContextDialer).DialContext(ctx, "tcp", "10.1.0.2:7835")
	if err != nil {
		t.Fatalf("CONNECT to the machine: %v", err)
	}
	defer c.Close()
	checkEcho(t, c)

	if _, err := dialer.(proxy.ContextDialer).DialContext(ctx, "tcp", "10.1.0.1:7835"); err == nil || !strings.Contains(err.Error(), "not allowed") {
		t.Errorf("CONNECT to the switch: %v, want refusal", err)
	}
}

// TestSOCKSReplies checks the reply code for each kind of request.
func TestSOCKSReplies(t *testing.T) {
	s, _ := startEchoMachine(t)
	ipv4 := func(addr string, port uint16) []byte {
		return socksConnect(socksCommandConnect, socksAddrIPv4, netip.MustParseAddr(addr).AsSlice(), port)
	}
	domain := func(name string, port uint16) []byte {
		return socksConnect(socksCommandConnect, socksAddrDomain, append([]byte{byte(len(name))}, name...), port)
	}
	for _, tc := range []struct {
		name    string
		request []byte
		want    socksReply
	}{
		{"machine", ipv4("10.1.0.2", 7835), socksSucceeded},
		{"machine by address literal as a name", domain("10.1.0.2", 7835), socksSucceeded},
		{"closed port", ipv4("10.1.0.2", 1), socksConnectionRefused},
		{"address nobody has", ipv4("10.1.0.77", 7835), socksHostUnreachable},
		{"switch", ipv4("10.1.0.1", 7835), socksNotAllowed},
		{"network address", ipv4("10.1.0.0", 7835), socksNotAllowed},
		{"broadcast address", ipv4("10.1.0.255", 7835), socksNotAllowed},
		{"outside the subnet", ipv4("10.2.0.5", 80), socksNotAllowed},
		{"host loopback", ipv4("127.0.0.1", 22), socksNotAllowed},
		{"IPv6", socksConnect(socksCommandConnect, socksAddrIPv6, net.IPv6loopback, 22), socksAddressTypeNotSupported},
		{"name", domain("node0", 7835), socksAddressTypeNotSupported},
		{"unknown address type", socksConnect(socksCommandConnect, 9, nil, 0), socksAddressTypeNotSupported},
		{"BIND", socksConnect(2, socksAddrIPv4, []byte{10, 1, 0, 2}, 7835), socksCommandNotSupported},
		{"UDP ASSOCIATE", socksConnect(3, socksAddrIPv4, []byte{10, 1, 0, 2}, 7835), socksCommandNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", s.SOCKSAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(waitTimeout))
			if _, err := c.Write([]byte{socksVersion, 1, socksMethodNone}); err != nil {
				t.Fatal(err)
			}
			method := make([]byte, 2)
			if _, err := io.ReadFull(c, method); err != nil || !bytes.Equal(method, []byte{socksVersion, socksMethodNone}) {
				t.Fatalf("method selection: %x, %v", method, err)
			}
			if _, err := c.Write(tc.request); err != nil {
				t.Fatal(err)
			}
			reply := make([]byte, 10)
			if _, err := io.ReadFull(c, reply); err != nil {
				t.Fatalf("reading reply: %v", err)
			}
			if got := socksReply(reply[1]); got != tc.want {
				t.Errorf("reply is %v, want %v", got, tc.want)
			}
			if tc.want == socksSucceeded {
				if bound := netip.AddrFrom4([4]byte(reply[4:8])); bound != s.RouterAddr() {
					t.Errorf("bound address is %v, want the switch's", bound)
				}
				checkEcho(t, c)
			}
		})
	}
}

func socksConnect(command, addrType byte, addr []byte, port uint16) []byte {
	b := append([]byte{socksVersion, command, 0, addrType}, addr...)
	return binary.BigEndian.AppendUint16(b, port)
}

func TestSOCKSAuthenticationRequired(t *testing.T) {
	s, _ := newSwitch(t, Config{}, true)
	c, err := net.Dial("tcp", s.SOCKSAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTimeout))
	// Only username/password.
	if _, err := c.Write([]byte{socksVersion, 1, 2}); err != nil {
		t.Fatal(err)
	}
	reply, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(reply, []byte{socksVersion, socksMethodRefused}) {
		t.Errorf("answer to a client that wants authentication: %x, %v; want 05ff and close", reply, err)
	}
}

func TestDialContext(t *testing.T) {
	s, _ := startEchoMachine(t)
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	c, err := s.DialContext(ctx, "tcp", "10.1.0.2:7835")
	if err != nil {
		t.Fatalf("DialContext: %v", err)
	}
	defer c.Close()
	checkEcho(t, c)

	for _, tc := range []struct {
		network, address, wantErr string
	}{
		{"tcp", "10.1.0.1:7835", "switch itself"},
		{"tcp4", "10.3.0.2:7835", "outside the test network"},
		{"tcp", "[::ffff:10.1.0.1]:7835", "switch itself"},
		{"tcp", "[fe80::1]:7835", "not an IPv4 address"},
		{"tcp", "node0:7835", "no names"},
		{"udp", "10.1.0.2:7835", "not tcp"},
		{"tcp", "10.1.0.2:1", "connection was refused"},
	} {
		t.Run(tc.network+" "+tc.address, func(t *testing.T) {
			c, err := s.DialContext(ctx, tc.network, tc.address)
			if err == nil {
				c.Close()
				t.Fatalf("DialContext succeeded, want error with %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("DialContext: %v, want error with %q", err, tc.wantErr)
			}
		})
	}
}

func TestDialContextNotRunning(t *testing.T) {
	s, _ := newSwitch(t, Config{}, false)
	if c, err := s.DialContext(t.Context(), "tcp", "10.1.0.2:7835"); err == nil {
		c.Close()
		t.Fatal("DialContext on a switch that is not running succeeded")
	}
}

// FuzzSOCKSRequest feeds the proxy's parser what a client could send: it
// must not panic, and a target it allows must be a machine address.
func FuzzSOCKSRequest(f *testing.F) {
	s, _ := newSwitch(f, Config{}, false)
	greeting := []byte{socksVersion, 1, socksMethodNone}
	for _, req := range [][]byte{
		socksConnect(socksCommandConnect, socksAddrIPv4, []byte{10, 1, 0, 2}, 7835),
		socksConnect(socksCommandConnect, socksAddrIPv4, []byte{10, 1, 0, 1}, 7835),
		socksConnect(socksCommandConnect, socksAddrDomain, append([]byte{8}, "10.1.0.2"...), 7835),
		socksConnect(socksCommandConnect, socksAddrIPv6, net.IPv6loopback, 22),
		socksConnect(2, socksAddrIPv4, []byte{10, 1, 0, 2}, 7835),
		socksConnect(socksCommandConnect, socksAddrDomain, []byte{200}, 7835),
	} {
		f.Add(append(append([]byte(nil), greeting...), req...))
	}
	f.Add([]byte{socksVersion, 0})
	f.Add([]byte{4, 1, 0, 80, 10, 1, 0, 2, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		rw := struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(data), io.Discard}
		if err := negotiateSOCKSMethod(rw); err != nil {
			return
		}
		req, err := readSOCKSRequest(rw)
		if err != nil {
			return
		}
		target, reply, err := s.target(req)
		if (err == nil) != (reply == socksSucceeded) {
			t.Fatalf("target: reply %v with error %v", reply, err)
		}
		if err == nil && (!defaultSubnet.Contains(target.Addr()) || target.Addr() == s.RouterAddr()) {
			t.Fatalf("allowed target %v", target)
		}
	})
}
