package dhcp4c

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Sizes of the headers the packet socket transport writes and reads.
const (
	ipv4HeaderLen = 20
	udpHeaderLen  = 8
)

// udpDatagram is a UDP datagram carried in IPv4.
type udpDatagram struct {
	src, dst netip.AddrPort
	payload  []byte
}

// encodeUDPv4 returns d as an IPv4 packet without options, with both
// checksums filled in.
func encodeUDPv4(d udpDatagram) ([]byte, error) {
	if !d.src.Addr().Is4() || !d.dst.Addr().Is4() {
		return nil, fmt.Errorf("not IPv4 addresses: %v -> %v", d.src, d.dst)
	}
	total := ipv4HeaderLen + udpHeaderLen + len(d.payload)
	if total > 0xffff {
		return nil, fmt.Errorf("payload of %d bytes does not fit an IPv4 packet", len(d.payload))
	}
	pkt := make([]byte, total)
	ip := pkt[:ipv4HeaderLen]
	ip[0] = 0x45 // version 4, header of 5 words
	binary.BigEndian.PutUint16(ip[2:], uint16(total))
	ip[8] = 64 // TTL
	ip[9] = 17 // UDP
	src, dst := d.src.Addr().As4(), d.dst.Addr().As4()
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	binary.BigEndian.PutUint16(ip[10:], ^checksum(0, ip))

	udp := pkt[ipv4HeaderLen:]
	binary.BigEndian.PutUint16(udp[0:], d.src.Port())
	binary.BigEndian.PutUint16(udp[2:], d.dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[udpHeaderLen:], d.payload)
	sum := ^checksum(pseudoHeaderSum(ip, len(udp)), udp)
	if sum == 0 {
		// Zero means "no checksum"; a computed zero is sent as all ones
		// (RFC 768).
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], sum)
	return pkt, nil
}

// decodeUDPv4 parses an IPv4 packet carrying a UDP datagram, as received
// from the network, so from anyone. It checks every length and the header
// checksum, and the UDP checksum if verifyUDPChecksum is set: the kernel
// hands packets whose checksum is left to hardware to a packet socket before
// it was computed. Fragments are rejected, as DHCP messages fit a packet.
// The returned payload aliases pkt.
func decodeUDPv4(pkt []byte, verifyUDPChecksum bool) (udpDatagram, error) {
	var d udpDatagram
	if len(pkt) < ipv4HeaderLen {
		return d, fmt.Errorf("packet of %d bytes is shorter than an IPv4 header", len(pkt))
	}
	if version := pkt[0] >> 4; version != 4 {
		return d, fmt.Errorf("IP version %d, not 4", version)
	}
	headerLen := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:]))
	switch {
	case headerLen < ipv4HeaderLen:
		return d, fmt.Errorf("IPv4 header length %d is below the minimum", headerLen)
	case total < headerLen+udpHeaderLen:
		return d, fmt.Errorf("IPv4 total length %d cannot hold the headers", total)
	case total > len(pkt):
		return d, fmt.Errorf("IPv4 total length %d exceeds the %d bytes received", total, len(pkt))
	}
	// Anything beyond the total length is link layer padding.
	pkt = pkt[:total]
	ip := pkt[:headerLen]
	if checksum(0, ip) != 0xffff {
		return d, errors.New("bad IPv4 header checksum")
	}
	if proto := ip[9]; proto != 17 {
		return d, fmt.Errorf("IP protocol %d, not UDP", proto)
	}
	if fragment := binary.BigEndian.Uint16(ip[6:]) & 0x3fff; fragment != 0 {
		return d, errors.New("IPv4 fragment")
	}
	udp := pkt[headerLen:]
	udpLen := int(binary.BigEndian.Uint16(udp[4:]))
	if udpLen < udpHeaderLen || udpLen > len(udp) {
		return d, fmt.Errorf("UDP length %d does not fit the %d bytes after the IPv4 header", udpLen, len(udp))
	}
	udp = udp[:udpLen]
	if verifyUDPChecksum && binary.BigEndian.Uint16(udp[6:]) != 0 {
		if checksum(pseudoHeaderSum(ip, udpLen), udp) != 0xffff {
			return d, errors.New("bad UDP checksum")
		}
	}
	src, _ := netip.AddrFromSlice(ip[12:16])
	dst, _ := netip.AddrFromSlice(ip[16:20])
	d.src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(udp[0:]))
	d.dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(udp[2:]))
	d.payload = udp[udpHeaderLen:]
	return d, nil
}

// pseudoHeaderSum is the checksum of the IPv4 pseudo header of a UDP
// datagram of udpLen bytes in the packet with header ip.
func pseudoHeaderSum(ip []byte, udpLen int) uint16 {
	var pseudo [12]byte
	copy(pseudo[0:8], ip[12:20])
	pseudo[9] = 17
	binary.BigEndian.PutUint16(pseudo[10:], uint16(udpLen))
	return checksum(0, pseudo[:])
}

// checksum adds b to the one's complement sum initial, as the Internet
// checksum (RFC 1071) does. A buffer carrying its own correct checksum sums
// to 0xffff.
func checksum(initial uint16, b []byte) uint16 {
	sum := uint32(initial)
	for ; len(b) >= 2; b = b[2:] {
		sum += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}
