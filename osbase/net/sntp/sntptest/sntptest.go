// Package sntptest is an NTP server for tests of SNTP clients: it answers
// from a clock set off from the local one by a chosen offset, and its
// replies can be altered to test how clients deal with bad ones.
package sntptest

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"metropolis.dev/osbase/net/sntp"
)

// Server is a test NTP server.
type Server struct {
	// Addr is the address the server listens on.
	Addr netip.AddrPort
	conn net.PacketConn

	mu        sync.Mutex
	offset    time.Duration
	alter     func(*sntp.Packet)
	answering bool
	queries   int
}

// Start starts a server on addr (such as "127.0.0.1:0") answering with its
// clock ahead of the local clock by offset, until the test ends.
func Start(t testing.TB, addr string, offset time.Duration) *Server {
	t.Helper()
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("starting NTP server: %v", err)
	}
	s := &Server{
		Addr:      conn.LocalAddr().(*net.UDPAddr).AddrPort(),
		conn:      conn,
		offset:    offset,
		answering: true,
	}
	t.Cleanup(func() { conn.Close() })
	go s.serve()
	return s
}

// SetOffset changes the server's offset from the local clock.
func (s *Server) SetOffset(offset time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset = offset
}

// SetAlter makes the server pass every reply through alter before sending
// it; nil sends replies as they are. The transmit timestamp is filled in
// after alter, unless alter set one.
func (s *Server) SetAlter(alter func(*sntp.Packet)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alter = alter
}

// SetAnswering makes the server answer queries or ignore them.
func (s *Server) SetAnswering(answering bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answering = answering
}

// Queries returns how many queries the server has received.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

func (s *Server) serve() {
	buf := make([]byte, 1024)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		s.mu.Lock()
		now := time.Now().Add(s.offset)
		s.queries++
		answering, alter := s.answering, s.alter
		s.mu.Unlock()
		req, err := sntp.ParsePacket(buf[:n])
		if err != nil || req.Mode != sntp.ModeClient || !answering {
			continue
		}
		reply := &sntp.Packet{
			Version:        req.Version,
			Mode:           sntp.ModeServer,
			Stratum:        2,
			Poll:           req.Poll,
			Precision:      -20,
			RootDelay:      sntp.Short(1 << 10), // 1/64 s
			RootDispersion: sntp.Short(1 << 10),
			ReferenceID:    [4]byte{192, 0, 2, 123},
			ReferenceTime:  sntp.TimestampFromTime(now.Add(-time.Minute)),
			OriginTime:     req.TransmitTime,
			ReceiveTime:    sntp.TimestampFromTime(now),
		}
		if alter != nil {
			alter(reply)
		}
		if reply.TransmitTime == 0 {
			s.mu.Lock()
			reply.TransmitTime = sntp.TimestampFromTime(time.Now().Add(s.offset))
			s.mu.Unlock()
		}
		s.conn.WriteTo(reply.Marshal(), from)
	}
}
