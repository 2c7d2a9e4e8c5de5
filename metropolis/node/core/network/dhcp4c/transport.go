package dhcp4c

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// DHCP's UDP ports.
const (
	serverPort = 67
	clientPort = 68
)

// maxMessageSize is the largest DHCP message the client accepts, which it
// announces in option 57: what fits an Ethernet frame without fragments.
const maxMessageSize = 1500 - ipv4HeaderLen - udpHeaderLen

// errTimeout is returned by transport.receive when the deadline passed.
var errTimeout = errors.New("no reply in time")

// transport carries the client's messages.
type transport interface {
	send(msg *dhcpv4.DHCPv4) error
	// receive returns the next DHCP message from a server. It returns
	// errTimeout once deadline passes and ctx.Err() once ctx is done.
	receive(ctx context.Context, deadline time.Time) (*dhcpv4.DHCPv4, error)
	close() error
}

// rawTransport broadcasts through a packet socket bound to an interface, and
// receives every DHCP reply arriving at it. See the package documentation
// for why.
type rawTransport struct {
	ifindex int
	src     netip.Addr
	file    *os.File
	conn    syscall.RawConn
	buf     []byte
	oob     []byte
}

// clientFilterProgram is a classic BPF program that passes only
// unfragmented IPv4 UDP packets to the client port, so that the socket does
// not wake the client for all other traffic.
var clientFilterProgram = []bpf.Instruction{
	bpf.LoadAbsolute{Off: 9, Size: 1}, // IPv4 protocol
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.IPPROTO_UDP, SkipTrue: 6},
	bpf.LoadAbsolute{Off: 6, Size: 2}, // flags and fragment offset
	bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x3fff, SkipTrue: 4},
	bpf.LoadMemShift{Off: 0}, // X = IPv4 header length
	bpf.LoadIndirect{Off: 2, Size: 2},
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: clientPort, SkipTrue: 1},
	bpf.RetConstant{Val: 0xffff},
	bpf.RetConstant{Val: 0},
}

var clientFilter = mustAssemble(clientFilterProgram)

func mustAssemble(prog []bpf.Instruction) []unix.SockFilter {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		panic(err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, ins := range raw {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	return filter
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openRaw opens a broadcast transport on iface sending from src, which is
// 0.0.0.0 until the client has an address.
func openRaw(iface *net.Interface, src netip.Addr) (*rawTransport, error) {
	// The socket starts out with protocol 0, receiving nothing, so that no
	// unfiltered packet is queued before the filter is attached and the
	// socket bound.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("creating packet socket: %w", err)
	}
	setup := func() error {
		prog := unix.SockFprog{Len: uint16(len(clientFilter)), Filter: &clientFilter[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
			return fmt.Errorf("attaching filter: %w", err)
		}
		// Auxiliary data tells which received packets still lack their
		// UDP checksum.
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return fmt.Errorf("enabling PACKET_AUXDATA: %w", err)
		}
		addr := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: iface.Index}
		if err := unix.Bind(fd, addr); err != nil {
			return fmt.Errorf("binding to %s: %w", iface.Name, err)
		}
		return nil
	}
	if err := setup(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	file := os.NewFile(uintptr(fd), "dhcp4c-packet-"+iface.Name)
	conn, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, err
	}
	return &rawTransport{
		ifindex: iface.Index,
		src:     src,
		file:    file,
		conn:    conn,
		buf:     make([]byte, 1<<16),
		oob:     make([]byte, unix.CmsgSpace(sizeofAuxdata)),
	}, nil
}

func (t *rawTransport) send(msg *dhcpv4.DHCPv4) error {
	pkt, err := encodeUDPv4(udpDatagram{
		src:     netip.AddrPortFrom(t.src, clientPort),
		dst:     netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), serverPort),
		payload: msg.ToBytes(),
	})
	if err != nil {
		return err
	}
	to := &unix.SockaddrLinklayer{
		Protocol: htons(unix.ETH_P_IP),
		Ifindex:  t.ifindex,
		Halen:    6,
		Addr:     [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	var sendErr error
	err = t.conn.Write(func(fd uintptr) bool {
		sendErr = unix.Sendto(int(fd), pkt, 0, to)
		return sendErr != unix.EAGAIN
	})
	if err == nil {
		err = sendErr
	}
	if err != nil {
		return fmt.Errorf("broadcasting: %w", err)
	}
	return nil
}

func (t *rawTransport) receive(ctx context.Context, deadline time.Time) (*dhcpv4.DHCPv4, error) {
	stop := context.AfterFunc(ctx, func() { t.file.SetReadDeadline(time.Now()) })
	defer stop()
	if err := t.file.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	for {
		var n, oobn int
		var recvErr error
		err := t.conn.Read(func(fd uintptr) bool {
			n, oobn, _, _, recvErr = unix.Recvmsg(int(fd), t.buf, t.oob, 0)
			return recvErr != unix.EAGAIN
		})
		if err == nil {
			err = recvErr
		}
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, errTimeout
		case err != nil:
			return nil, fmt.Errorf("receiving: %w", err)
		}
		d, err := decodeUDPv4(t.buf[:n], !checksumPending(t.oob[:oobn]))
		if err != nil || d.src.Port() != serverPort {
			continue
		}
		if msg, err := dhcpv4.FromBytes(d.payload); err == nil {
			return msg, nil
		}
	}
}

// sizeofAuxdata is the size of struct tpacket_auxdata.
const sizeofAuxdata = int(unsafe.Sizeof(unix.TpacketAuxdata{}))

// checksumPending reports whether the auxiliary data of a received packet
// says that its checksum was left to be computed by hardware, and so is not
// filled in yet.
func checksumPending(oob []byte) bool {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < sizeofAuxdata {
			continue
		}
		// tp_status is the first field of struct tpacket_auxdata.
		status := binary.NativeEndian.Uint32(m.Data)
		return status&unix.TP_STATUS_CSUMNOTREADY != 0
	}
	return false
}

func (t *rawTransport) close() error {
	return t.file.Close()
}

// udpTransport unicasts to a server from the leased address, through a UDP
// socket bound to the interface.
type udpTransport struct {
	conn   *net.UDPConn
	server *net.UDPAddr
	buf    []byte
}

func openUDP(iface *net.Interface, src, server netip.Addr) (*udpTransport, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = unix.BindToDevice(int(fd), iface.Name)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	local := netip.AddrPortFrom(src, clientPort).String()
	pc, err := lc.ListenPacket(context.Background(), "udp4", local)
	if err != nil {
		return nil, fmt.Errorf("opening UDP socket on %s: %w", local, err)
	}
	return &udpTransport{
		conn:   pc.(*net.UDPConn),
		server: net.UDPAddrFromAddrPort(netip.AddrPortFrom(server, serverPort)),
		buf:    make([]byte, 1<<16),
	}, nil
}

func (t *udpTransport) send(msg *dhcpv4.DHCPv4) error {
	if _, err := t.conn.WriteToUDP(msg.ToBytes(), t.server); err != nil {
		return fmt.Errorf("sending to %v: %w", t.server, err)
	}
	return nil
}

func (t *udpTransport) receive(ctx context.Context, deadline time.Time) (*dhcpv4.DHCPv4, error) {
	stop := context.AfterFunc(ctx, func() { t.conn.SetReadDeadline(time.Now()) })
	defer stop()
	if err := t.conn.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	for {
		n, from, err := t.conn.ReadFromUDPAddrPort(t.buf)
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, errTimeout
		case err != nil:
			return nil, fmt.Errorf("receiving: %w", err)
		}
		if from.Port() != serverPort {
			continue
		}
		if msg, err := dhcpv4.FromBytes(t.buf[:n]); err == nil {
			return msg, nil
		}
	}
}

func (t *udpTransport) close() error {
	return t.conn.Close()
}
