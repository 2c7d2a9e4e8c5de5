package nanoswitch

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// The SOCKS5 protocol (RFC 1928), as far as the proxy speaks it: no
// authentication, CONNECT to IPv4 addresses.
const (
	socksVersion        = 5
	socksMethodNone     = 0x00
	socksMethodRefused  = 0xff
	socksCommandConnect = 1
	socksAddrIPv4       = 1
	socksAddrDomain     = 3
	socksAddrIPv6       = 4
)

// socksReply is the status of the proxy's answer to a request.
type socksReply byte

const (
	socksSucceeded               socksReply = 0x00
	socksGeneralFailure          socksReply = 0x01
	socksNotAllowed              socksReply = 0x02
	socksNetworkUnreachable      socksReply = 0x03
	socksHostUnreachable         socksReply = 0x04
	socksConnectionRefused       socksReply = 0x05
	socksCommandNotSupported     socksReply = 0x07
	socksAddressTypeNotSupported socksReply = 0x08
)

const (
	// socksHandshakeTimeout bounds how long a client may take to say what
	// it wants.
	socksHandshakeTimeout = 10 * time.Second
	// dialTimeout bounds a connection attempt into the test network, which
	// fails only by timing out when the target does not answer ARP.
	dialTimeout = 30 * time.Second
)

// errUnknownAddressType is returned by readSOCKSRequest for an address type
// RFC 1928 does not define, after which the request cannot be read further.
var errUnknownAddressType = errors.New("unknown address type")

// socksRequest is what a client asks of the proxy.
type socksRequest struct {
	command  byte
	addrType byte
	// addr is the target for IPv4 and IPv6 address types.
	addr netip.Addr
	// name is the target for the domain name address type.
	name string
	port uint16
}

// negotiateSOCKSMethod reads the client's greeting and chooses "no
// authentication", the only method the proxy offers.
func negotiateSOCKSMethod(rw io.ReadWriter) error {
	var hdr [2]byte
	if _, err := io.ReadFull(rw, hdr[:]); err != nil {
		return fmt.Errorf("reading greeting: %w", err)
	}
	if hdr[0] != socksVersion {
		return fmt.Errorf("SOCKS version %d is not 5", hdr[0])
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(rw, methods); err != nil {
		return fmt.Errorf("reading authentication methods: %w", err)
	}
	for _, m := range methods {
		if m == socksMethodNone {
			_, err := rw.Write([]byte{socksVersion, socksMethodNone})
			return err
		}
	}
	rw.Write([]byte{socksVersion, socksMethodRefused})
	return fmt.Errorf("client offers no method without authentication (offers %v)", methods)
}

// readSOCKSRequest reads the request that follows the method negotiation.
func readSOCKSRequest(r io.Reader) (*socksRequest, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("reading request: %w", err)
	}
	if hdr[0] != socksVersion {
		return nil, fmt.Errorf("request version %d is not 5", hdr[0])
	}
	req := &socksRequest{command: hdr[1], addrType: hdr[3]}
	var addr []byte
	switch req.addrType {
	case socksAddrIPv4:
		addr = make([]byte, 4)
	case socksAddrIPv6:
		addr = make([]byte, 16)
	case socksAddrDomain:
		var n [1]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return nil, fmt.Errorf("reading name length: %w", err)
		}
		addr = make([]byte, n[0])
	default:
		return nil, fmt.Errorf("%w %d", errUnknownAddressType, req.addrType)
	}
	if _, err := io.ReadFull(r, addr); err != nil {
		return nil, fmt.Errorf("reading address: %w", err)
	}
	var port [2]byte
	if _, err := io.ReadFull(r, port[:]); err != nil {
		return nil, fmt.Errorf("reading port: %w", err)
	}
	req.port = binary.BigEndian.Uint16(port[:])
	if req.addrType == socksAddrDomain {
		req.name = string(addr)
	} else {
		req.addr, _ = netip.AddrFromSlice(addr)
	}
	return req, nil
}

// writeSOCKSReply answers a request; bound is the proxy's end of the new
// connection, or zero if there is none.
func writeSOCKSReply(w io.Writer, reply socksReply, bound netip.AddrPort) error {
	addr := bound.Addr().Unmap()
	if !addr.Is4() {
		addr = netip.IPv4Unspecified()
	}
	b := []byte{socksVersion, byte(reply), 0, socksAddrIPv4}
	b = append(b, addr.AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, bound.Port())
	_, err := w.Write(b)
	return err
}

// target says where req may connect to, or why not.
func (s *Switch) target(req *socksRequest) (netip.AddrPort, socksReply, error) {
	if req.command != socksCommandConnect {
		return netip.AddrPort{}, socksCommandNotSupported, fmt.Errorf("command %d is not CONNECT", req.command)
	}
	addr := req.addr
	switch req.addrType {
	case socksAddrIPv6:
		return netip.AddrPort{}, socksAddressTypeNotSupported, errors.New("IPv6 targets are not supported")
	case socksAddrDomain:
		// Clients may send an address literal as a name.
		a, err := netip.ParseAddr(req.name)
		if err != nil {
			return netip.AddrPort{}, socksAddressTypeNotSupported, fmt.Errorf("name %q is not resolved: the test network has no names", req.name)
		}
		addr = a
	}
	if err := s.checkTarget(addr); err != nil {
		return netip.AddrPort{}, socksNotAllowed, err
	}
	return netip.AddrPortFrom(addr, req.port), socksSucceeded, nil
}

// checkTarget tells whether the host may connect to addr: only machine
// addresses of the subnet are allowed.
func (s *Switch) checkTarget(addr netip.Addr) error {
	addr = addr.Unmap()
	switch {
	case !addr.Is4():
		return fmt.Errorf("target %v is not an IPv4 address", addr)
	case !s.subnet.Contains(addr):
		return fmt.Errorf("target %v is outside the test network %v", addr, s.subnet)
	case addr == s.RouterAddr():
		return fmt.Errorf("target %v is the switch itself", addr)
	case addr == s.subnet.Addr():
		return fmt.Errorf("target %v is the network address of %v", addr, s.subnet)
	case !s.subnet.Contains(addr.Next()):
		return fmt.Errorf("target %v is the broadcast address of %v", addr, s.subnet)
	}
	return nil
}

// DialContext opens a TCP connection into the test network through the
// switch's stack, to an address the SOCKS proxy would allow. network is
// "tcp" or "tcp4", address an "IP:port". The switch must be running.
func (s *Switch) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if network != "tcp" && network != "tcp4" {
		return nil, fmt.Errorf("network %q is not tcp", network)
	}
	target, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("address %q is not IP:port (the test network has no names): %w", address, err)
	}
	if err := s.checkTarget(target.Addr()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	running := s.state == stateRunning
	s.mu.Unlock()
	if !running {
		return nil, errors.New("switch is not running")
	}
	c, err := s.dial(ctx, netip.AddrPortFrom(target.Addr().Unmap(), target.Port()))
	if err != nil {
		return nil, fmt.Errorf("dialing %v: %w", target, err)
	}
	return c, nil
}

func (s *Switch) serveSOCKS(ctx context.Context) {
	for {
		c, err := s.socks.Accept()
		if err != nil {
			if ctx.Err() == nil {
				s.fail(fmt.Errorf("accepting SOCKS connection: %w", err))
			}
			return
		}
		s.wg.Go(func() { s.handleSOCKS(ctx, c) })
	}
}

// handleSOCKS serves one SOCKS client until either side closes or ctx is
// done.
func (s *Switch) handleSOCKS(ctx context.Context, c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	log := s.log.With("client", c.RemoteAddr())

	c.SetDeadline(time.Now().Add(socksHandshakeTimeout))
	if err := negotiateSOCKSMethod(c); err != nil {
		log.Info("SOCKS: refused client", "err", err)
		return
	}
	req, err := readSOCKSRequest(c)
	if err != nil {
		if errors.Is(err, errUnknownAddressType) {
			writeSOCKSReply(c, socksAddressTypeNotSupported, netip.AddrPort{})
		}
		log.Info("SOCKS: refused malformed request", "err", err)
		return
	}
	target, reply, err := s.target(req)
	if err != nil {
		writeSOCKSReply(c, reply, netip.AddrPort{})
		log.Info("SOCKS: refused CONNECT", "reply", reply, "err", err)
		return
	}
	// From here on, dialTimeout bounds the wait.
	c.SetDeadline(time.Time{})
	dialCtx, cancel := context.WithTimeout(ctx, dialTimeout)
	upstream, err := s.dial(dialCtx, target)
	cancel()
	if err != nil {
		reply := socksReplyForDialError(err)
		writeSOCKSReply(c, reply, netip.AddrPort{})
		log.Info("SOCKS: CONNECT failed", "target", target, "reply", reply, "err", err)
		return
	}
	defer upstream.Close()
	stopUpstream := context.AfterFunc(ctx, func() { upstream.Close() })
	defer stopUpstream()
	bound, _ := netip.ParseAddrPort(upstream.LocalAddr().String())
	if err := writeSOCKSReply(c, socksSucceeded, bound); err != nil {
		log.Info("SOCKS: client left before the connection was up", "target", target, "err", err)
		return
	}
	log.Debug("SOCKS: connected", "target", target)
	relay(c, upstream)
}

// socksReplyForDialError tells a client why its connection failed.
func socksReplyForDialError(err error) socksReply {
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		// The userspace stack reports its errors by their text.
		switch opErr.Err.Error() {
		case (&tcpip.ErrConnectionRefused{}).String():
			return socksConnectionRefused
		case (&tcpip.ErrHostUnreachable{}).String(), (&tcpip.ErrHostDown{}).String(), (&tcpip.ErrTimeout{}).String():
			return socksHostUnreachable
		case (&tcpip.ErrNetworkUnreachable{}).String():
			return socksNetworkUnreachable
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return socksHostUnreachable
	}
	return socksGeneralFailure
}

// relay copies between a and b in both directions until both are done,
// passing on half-closes.
func relay(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() { copyAndCloseWrite(a, b) })
	copyAndCloseWrite(b, a)
	wg.Wait()
}

func copyAndCloseWrite(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if err != nil {
		// The connection is broken rather than finished: end both
		// directions.
		dst.Close()
		src.Close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

func (r socksReply) String() string {
	switch r {
	case socksSucceeded:
		return "succeeded"
	case socksGeneralFailure:
		return "general failure"
	case socksNotAllowed:
		return "connection not allowed by ruleset"
	case socksNetworkUnreachable:
		return "network unreachable"
	case socksHostUnreachable:
		return "host unreachable"
	case socksConnectionRefused:
		return "connection refused"
	case socksCommandNotSupported:
		return "command not supported"
	case socksAddressTypeNotSupported:
		return "address type not supported"
	}
	return fmt.Sprintf("reply %#02x", byte(r))
}
