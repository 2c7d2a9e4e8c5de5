package dhcp4c

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/bpf"
)

func testDatagram() udpDatagram {
	return udpDatagram{
		src:     netip.MustParseAddrPort("0.0.0.0:68"),
		dst:     netip.MustParseAddrPort("255.255.255.255:67"),
		payload: []byte("hello, odd length"),
	}
}

func TestUDPv4RoundTrip(t *testing.T) {
	d := testDatagram()
	pkt, err := encodeUDPv4(d)
	if err != nil {
		t.Fatal(err)
	}
	// Link layer padding after the packet is ignored.
	got, err := decodeUDPv4(append(pkt, 0, 0, 0), true)
	if err != nil {
		t.Fatalf("decoding what was encoded: %v", err)
	}
	if got.src != d.src || got.dst != d.dst || !bytes.Equal(got.payload, d.payload) {
		t.Errorf("decoded %v -> %v %q, want %v -> %v %q", got.src, got.dst, got.payload, d.src, d.dst, d.payload)
	}
}

func TestDecodeUDPv4Rejects(t *testing.T) {
	good, err := encodeUDPv4(testDatagram())
	if err != nil {
		t.Fatal(err)
	}
	// fixIP recomputes the IPv4 header checksum after a change, so that
	// the intended check is the one that fails.
	fixIP := func(p []byte) {
		binary.BigEndian.PutUint16(p[10:], 0)
		binary.BigEndian.PutUint16(p[10:], ^checksum(0, p[:ipv4HeaderLen]))
	}
	for _, tc := range []struct {
		name   string
		mangle func(p []byte) []byte
		want   string
	}{
		{"short", func(p []byte) []byte { return p[:10] }, "shorter than an IPv4 header"},
		{"IPv6", func(p []byte) []byte { p[0] = 0x65; return p }, "version 6"},
		{"header length", func(p []byte) []byte { p[0] = 0x44; fixIP(p); return p }, "header length 16"},
		{"truncated", func(p []byte) []byte { return p[:len(p)-1] }, "exceeds"},
		{"total length", func(p []byte) []byte { binary.BigEndian.PutUint16(p[2:], 24); fixIP(p); return p }, "cannot hold"},
		{"IP checksum", func(p []byte) []byte { p[8]--; return p }, "IPv4 header checksum"},
		{"TCP", func(p []byte) []byte { p[9] = 6; fixIP(p); return p }, "not UDP"},
		{"fragment", func(p []byte) []byte { p[6] = 0x20; fixIP(p); return p }, "fragment"},
		{"UDP length", func(p []byte) []byte { binary.BigEndian.PutUint16(p[24:], 200); return p }, "UDP length 200"},
		{"UDP checksum", func(p []byte) []byte { p[len(p)-1]++; return p }, "UDP checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeUDPv4(tc.mangle(bytes.Clone(good)), true)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}

	// Without checksum verification, as for packets whose checksum the
	// hardware was to compute, a wrong UDP checksum passes.
	p := bytes.Clone(good)
	p[len(p)-1]++
	if _, err := decodeUDPv4(p, false); err != nil {
		t.Errorf("UDP checksum verified although not asked to: %v", err)
	}
}

// FuzzDecodeUDPv4 feeds arbitrary packets, as anyone on the link can send,
// to the decoder. It must not panic, and what it accepts must survive being
// encoded again.
func FuzzDecodeUDPv4(f *testing.F) {
	good, err := encodeUDPv4(testDatagram())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:ipv4HeaderLen])
	f.Add([]byte{0x4f})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		d, err := decodeUDPv4(pkt, true)
		if err != nil {
			return
		}
		again, err := encodeUDPv4(d)
		if err != nil {
			t.Fatalf("re-encoding an accepted datagram: %v", err)
		}
		d2, err := decodeUDPv4(again, true)
		if err != nil {
			t.Fatalf("decoding a re-encoded datagram: %v", err)
		}
		if d2.src != d.src || d2.dst != d.dst || !bytes.Equal(d2.payload, d.payload) {
			t.Fatalf("round trip changed the datagram")
		}
	})
}

func TestClientFilter(t *testing.T) {
	vm, err := bpf.NewVM(clientFilterProgram)
	if err != nil {
		t.Fatalf("filter does not load: %v", err)
	}
	toClient := testDatagram()
	toClient.src, toClient.dst = toClient.dst, netip.MustParseAddrPort("10.0.0.2:68")
	for _, tc := range []struct {
		name   string
		d      udpDatagram
		mangle func(p []byte)
		pass   bool
	}{
		{"reply to client", toClient, func(p []byte) {}, true},
		{"request to server", testDatagram(), func(p []byte) {}, false},
		{"TCP", toClient, func(p []byte) { p[9] = 6 }, false},
		{"first fragment", toClient, func(p []byte) { p[6] = 0x20 }, false},
		{"later fragment", toClient, func(p []byte) { p[7] = 0x01 }, false},
		{"IPv4 options", toClient, func(p []byte) {
			// Four bytes of options shift the UDP header.
			p[0] = 0x46
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkt, err := encodeUDPv4(tc.d)
			if err != nil {
				t.Fatal(err)
			}
			tc.mangle(pkt)
			n, err := vm.Run(pkt)
			if err != nil {
				t.Fatal(err)
			}
			if pass := n > 0; pass != tc.pass {
				t.Errorf("filter passes it: %v, want %v", pass, tc.pass)
			}
		})
	}
}
