// Package dns is the DNS server of a node's local resolver. It listens on
// given addresses, usually loopback ones that the node's resolv.conf points
// at, over UDP and TCP, and hands each query to the handler registered for
// the longest zone containing the queried name. Services add and remove
// handlers while the server runs: a forwarder to upstream resolvers
// (metropolis.dev/osbase/net/dns/forward) for the root zone, and handlers
// answering the names only the node's services know, such as those of a
// cluster, for their zones.
//
// Routing by zone, rather than asking handlers in turn, keeps a handler's
// mistakes within its zone and makes the answer for a name independent of
// the order services started in.
package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/miekg/dns"

	"metropolis.dev/osbase/supervisor"
)

// Server is a DNS server routing queries to handlers by zone. Queries for
// names in no registered zone are refused. Handlers can be added before and
// while it serves.
type Server struct {
	mux *dns.ServeMux
}

// NewServer returns a server without handlers.
func NewServer() *Server {
	return &Server{mux: dns.NewServeMux()}
}

// AddHandler makes h answer the queries for zone and the names below it,
// except those in a longer zone with a handler of its own. The root zone
// "." catches every name. A later call for the same zone replaces the
// handler.
func (s *Server) AddHandler(zone string, h dns.Handler) {
	s.mux.Handle(dns.Fqdn(zone), h)
}

// RemoveHandler removes the handler of zone.
func (s *Server) RemoveHandler(zone string) {
	s.mux.HandleRemove(dns.Fqdn(zone))
}

// ServeDNS answers r through the handler of its zone.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	s.mux.ServeDNS(w, r)
}

// Serve serves on listen, over UDP and TCP, until ctx is canceled. It is
// meant to be the body of a supervisor runnable, which it signals healthy
// once it listens on every address.
func (s *Server) Serve(ctx context.Context, listen ...netip.AddrPort) error {
	if len(listen) == 0 {
		return errors.New("no addresses to listen on")
	}
	// Every address is bound before any server starts, so that a failure
	// leaves nothing behind.
	var servers []*dns.Server
	closeAll := func() {
		for _, srv := range servers {
			if srv.PacketConn != nil {
				srv.PacketConn.Close()
			} else {
				srv.Listener.Close()
			}
		}
	}
	for _, addr := range listen {
		pc, err := net.ListenPacket("udp", addr.String())
		if err != nil {
			closeAll()
			return fmt.Errorf("listening on UDP %v: %w", addr, err)
		}
		servers = append(servers, &dns.Server{PacketConn: pc, Handler: s.mux})
		l, err := net.Listen("tcp", addr.String())
		if err != nil {
			closeAll()
			return fmt.Errorf("listening on TCP %v: %w", addr, err)
		}
		servers = append(servers, &dns.Server{Listener: l, Handler: s.mux})
	}
	var started sync.WaitGroup
	serveErrs := make(chan error, len(servers))
	for _, srv := range servers {
		started.Add(1)
		srv.NotifyStartedFunc = started.Done
		go func() { serveErrs <- srv.ActivateAndServe() }()
	}
	// Shutting a server down before it started fails, leaving it running.
	started.Wait()
	defer func() {
		for _, srv := range servers {
			srv.Shutdown()
		}
	}()
	supervisor.Logger(ctx).Infof("DNS server listening on %v", listen)
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-serveErrs:
		return fmt.Errorf("serving DNS: %w", err)
	}
}
