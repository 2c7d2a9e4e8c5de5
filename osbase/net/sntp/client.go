package sntp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"
)

// maxRootDistance is the largest root distance (half the root delay plus
// the root dispersion) a server may claim: beyond it, RFC 5905 (MAXDIST
// and MAXDISP) considers the server's time worthless.
const maxRootDistance = 16 * time.Second

// Response is a server's reply to a query, checked and interpreted.
type Response struct {
	Server netip.AddrPort
	// Offset is how far the server's clock is ahead of the local clock.
	Offset time.Duration
	// Delay is the round trip time to the server, without the time the
	// server took to reply.
	Delay   time.Duration
	Stratum uint8
	Leap    LeapIndicator
	// RootDelay and RootDispersion are the server's round trip time to and
	// error bound relative to its reference clock.
	RootDelay      time.Duration
	RootDispersion time.Duration
}

// RootDistance bounds the error of the local clock if set from r: half the
// round trip to the reference clock, plus the server's error bound.
func (r *Response) RootDistance() time.Duration {
	return (r.RootDelay+r.Delay)/2 + r.RootDispersion
}

// KissOfDeathError is returned when a server answers with a kiss-of-death
// packet, telling the client to stop (DENY, RSTR) or slow down (RATE).
type KissOfDeathError struct {
	Code string
}

func (e *KissOfDeathError) Error() string {
	return fmt.Sprintf("server sent kiss-of-death %q", e.Code)
}

// Query asks server for the time, waiting for a reply until ctx is done; it
// should carry a deadline. Replies not answering this query (a wrong origin
// timestamp) are ignored, as they may be forged or stale; other replies
// that cannot be believed make Query return an error.
func Query(ctx context.Context, server netip.AddrPort) (*Response, error) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		return nil, fmt.Errorf("connecting to %v: %w", server, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetReadDeadline(deadline)
	}

	// The transmit timestamp is a random cookie rather than the time: the
	// server only echoes it, and its unpredictability is what tells a
	// reply from a forgery. The local time of sending is kept here.
	var cookieBytes [8]byte
	rand.Read(cookieBytes[:])
	cookie := Timestamp(binary.BigEndian.Uint64(cookieBytes[:]) | 1)
	req := &Packet{Version: Version, Mode: ModeClient, TransmitTime: cookie}
	sent := time.Now()
	if _, err := conn.Write(req.Marshal()); err != nil {
		return nil, fmt.Errorf("sending to %v: %w", server, err)
	}

	buf := make([]byte, 1024)
	var ignored error
	for {
		n, err := conn.Read(buf)
		// The receive time is derived from the monotonic clock, so that a
		// change of the wall clock during the query does not distort it.
		received := sent.Add(time.Since(sent))
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
				err = fmt.Errorf("no reply from %v in time", server)
				if ignored != nil {
					err = fmt.Errorf("%w (ignored a reply: %v)", err, ignored)
				}
				return nil, err
			}
			return nil, fmt.Errorf("receiving from %v: %w", server, err)
		}
		reply, err := ParsePacket(buf[:n])
		if err != nil {
			ignored = err
			continue
		}
		if reply.OriginTime != cookie {
			ignored = errors.New("origin timestamp does not match the query")
			continue
		}
		resp, err := interpret(reply, sent, received)
		if err != nil {
			return nil, fmt.Errorf("reply from %v: %w", server, err)
		}
		resp.Server = server
		return resp, nil
	}
}

// interpret checks a reply to a query sent at sent and received at received,
// and computes the offset and delay from its timestamps (RFC 5905, 8).
func interpret(p *Packet, sent, received time.Time) (*Response, error) {
	switch {
	case p.Mode != ModeServer:
		return nil, fmt.Errorf("mode %d, not server", p.Mode)
	case p.Stratum == 0:
		return nil, &KissOfDeathError{Code: string(p.ReferenceID[:])}
	case p.Stratum > 15:
		return nil, fmt.Errorf("stratum %d: server not synchronised", p.Stratum)
	case p.Leap == LeapUnsynchronized:
		return nil, errors.New("leap indicator says the server is not synchronised")
	case p.ReceiveTime == 0 || p.TransmitTime == 0:
		return nil, errors.New("receive or transmit timestamp missing")
	}
	serverReceived, serverSent := p.ReceiveTime.Time(), p.TransmitTime.Time()
	if serverSent.Before(serverReceived) {
		return nil, errors.New("server sent the reply before it received the query")
	}
	r := &Response{
		Offset:         (serverReceived.Sub(sent) + serverSent.Sub(received)) / 2,
		Delay:          max(received.Sub(sent)-serverSent.Sub(serverReceived), 0),
		Stratum:        p.Stratum,
		Leap:           p.Leap,
		RootDelay:      p.RootDelay.Duration(),
		RootDispersion: p.RootDispersion.Duration(),
	}
	if d := r.RootDistance(); d > maxRootDistance {
		return nil, fmt.Errorf("root distance of %v exceeds %v", d, maxRootDistance)
	}
	return r, nil
}
