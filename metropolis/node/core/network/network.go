// Package network is the node's network service. It brings the node's
// interfaces up and keeps them configured, and publishes what other
// services need to know about the node's network as an event value: the
// node's external address, name servers and NTP servers.
//
// It runs in one of two modes:
//   - Dynamic, without static configuration: the node's single Ethernet
//     interface is configured by DHCPv4 (see dhcp4c). Which interface that
//     is cannot be guessed when there are several, so the service then waits
//     and says so in its log.
//   - Static, from an osbase/net/proto.Net: devices (matched by hardware
//     address and optionally driver), bonds, VLANs, addresses, routes, name
//     servers, and DHCPv4 on the interfaces that ask for it.
//
// In both modes it also sets the kernel's network parameters (sysctl.go),
// installs the node's firewall (firewall.go), and runs the node's DNS
// resolver: a server on loopback (osbase/net/dns) which forwards to the
// name servers of the network (osbase/net/dns/forward), and to which other
// services add handlers for the names they know.
package network

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/event/memory"
	osdns "metropolis.dev/osbase/net/dns"
	"metropolis.dev/osbase/net/dns/forward"
	netpb "metropolis.dev/osbase/net/proto"
	"metropolis.dev/osbase/supervisor"
)

// Config configures the network service.
type Config struct {
	// StaticConfig is the node's static network configuration. Nil means
	// DHCP on the node's single Ethernet interface.
	StaticConfig *netpb.Net
	// DHCPVendorClass is sent to DHCP servers as the vendor class
	// identifier (option 60), if not empty.
	DHCPVendorClass string
	// DNSHandlers answer the names of their zones (keys, such as
	// "cluster.internal.") instead of the upstream name servers. More can
	// be added while the service runs, with AddDNSHandler.
	DNSHandlers map[string]dns.Handler
	// DNSListen are the addresses the DNS resolver listens on. Empty means
	// port 53 of 127.0.0.1, and of ::1 if the node has IPv6.
	DNSListen []netip.AddrPort
	// ResolvConfPath, if not empty, is where the service writes a
	// resolv.conf naming its DNS resolver, once that listens.
	ResolvConfPath string
	// SysctlRoot is where the kernel's parameters are set. Empty means
	// /proc/sys.
	SysctlRoot string
}

// Status is what the network service tells other services about the
// node's network.
type Status struct {
	// ExternalAddress is the address other nodes reach this node at. It is
	// nil while the node has none, eg. after its DHCP lease expired.
	ExternalAddress net.IP
	// DNSServers are the name servers of the network, which the node's
	// resolver forwards to.
	DNSServers []net.IP
	// NTPServers and NTPServerNames are the time servers of the network,
	// by address (from DHCP or the static configuration) and by name (from
	// the static configuration).
	NTPServers     []net.IP
	NTPServerNames []string
}

// Service is the network service. Create it with New.
type Service struct {
	cfg    Config
	dns    *osdns.Server
	status memory.Value[*Status]
}

// New returns a network service for cfg.
func New(cfg Config) *Service {
	s := &Service{cfg: cfg, dns: osdns.NewServer()}
	for zone, h := range cfg.DNSHandlers {
		s.dns.AddHandler(zone, h)
	}
	return s
}

// Status returns the event value the service publishes its status in. It is
// first set once the node has an address.
func (s *Service) Status() event.Value[*Status] {
	return &s.status
}

// AddDNSHandler makes h answer the queries for names in zone (see
// osdns.Server.AddHandler). The root zone is the service's own forwarder.
func (s *Service) AddDNSHandler(zone string, h dns.Handler) {
	s.dns.AddHandler(zone, h)
}

// RemoveDNSHandler removes the handler of zone.
func (s *Service) RemoveDNSHandler(zone string) {
	s.dns.RemoveHandler(zone)
}

// Run runs the service. It is a supervisor runnable.
func (s *Service) Run(ctx context.Context) error {
	log := supervisor.Logger(ctx)
	var static *staticConfig
	if s.cfg.StaticConfig != nil {
		var err error
		if static, err = parseStaticConfig(s.cfg.StaticConfig); err != nil {
			return fmt.Errorf("invalid static network configuration: %w", err)
		}
	}

	sysctlRoot := s.cfg.SysctlRoot
	if sysctlRoot == "" {
		sysctlRoot = "/proc/sys"
	}
	if err := applySysctls(sysctlRoot); err != nil {
		return err
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("finding loopback interface: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bringing loopback interface up: %w", err)
	}
	if err := applyFirewall(); err != nil {
		return err
	}

	listen := s.cfg.DNSListen
	if len(listen) == 0 {
		listen = defaultDNSListen(lo)
	}
	forwarder := forward.New(forward.Config{Logger: supervisor.Slog(ctx)})
	s.dns.AddHandler(".", forwarder)
	if err := supervisor.Run(ctx, "dns", func(ctx context.Context) error {
		return s.serveDNS(ctx, listen)
	}); err != nil {
		return err
	}
	if err := supervisor.Run(ctx, "dns-upstreams", s.followUpstreams(forwarder)); err != nil {
		return err
	}

	if static != nil {
		log.Infof("Configuring the network statically (%d interfaces)", len(static.interfaces))
		err = supervisor.Run(ctx, "static", s.runStatic(static))
	} else {
		log.Infof("No static network configuration, using DHCP")
		err = supervisor.Run(ctx, "dynamic", s.runDynamic)
	}
	if err != nil {
		return err
	}
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	<-ctx.Done()
	return ctx.Err()
}

// defaultDNSListen returns port 53 of the loopback addresses the node has.
func defaultDNSListen(lo netlink.Link) []netip.AddrPort {
	listen := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53")}
	v6, err := netlink.AddrList(lo, netlink.FAMILY_V6)
	if err == nil && slices.ContainsFunc(v6, func(a netlink.Addr) bool { return a.IP.Equal(net.IPv6loopback) }) {
		listen = append(listen, netip.MustParseAddrPort("[::1]:53"))
	}
	return listen
}

func (s *Service) serveDNS(ctx context.Context, listen []netip.AddrPort) error {
	if s.cfg.ResolvConfPath != "" {
		// Written before the server listens: resolvers retry, and the
		// file is only as wrong as it was before.
		var servers []netip.Addr
		for _, a := range listen {
			servers = append(servers, a.Addr())
		}
		if err := osdns.WriteResolvConf(s.cfg.ResolvConfPath, servers...); err != nil {
			return err
		}
	}
	return s.dns.Serve(ctx, listen...)
}

// followUpstreams returns a runnable pointing forwarder at the name servers
// of every status published.
func (s *Service) followUpstreams(forwarder *forward.Forwarder) supervisor.Runnable {
	return func(ctx context.Context) error {
		w := s.status.Watch()
		defer w.Close()
		supervisor.Signal(ctx, supervisor.SignalHealthy)
		var current []netip.AddrPort
		for {
			st, err := w.Get(ctx)
			if err != nil {
				return err
			}
			var upstreams []netip.AddrPort
			for _, ip := range st.DNSServers {
				if addr, ok := netip.AddrFromSlice(ip); ok {
					upstreams = append(upstreams, netip.AddrPortFrom(addr.Unmap(), 53))
				}
			}
			if !slices.Equal(upstreams, current) {
				supervisor.Logger(ctx).Infof("Forwarding DNS queries to %v", upstreams)
				forwarder.SetUpstreams(upstreams)
				current = upstreams
			}
		}
	}
}
