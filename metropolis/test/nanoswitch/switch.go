package nanoswitch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"metropolis.dev/osbase/test/qemu"
)

// Config configures a Switch.
type Config struct {
	// Dir is the existing directory where the ports' unix sockets are
	// created. A socket's path must stay below 108 bytes.
	Dir string
	// Subnet is the IPv4 network of the machines; the zero value means
	// 10.1.0.0/24. The switch has its first address, and DHCP hands out the
	// following ones.
	Subnet netip.Prefix
	// LeaseTime is the DHCP lease time; zero means 30 s.
	LeaseTime time.Duration
	// SOCKSAddress is the host TCP address the SOCKS5 proxy listens on; ""
	// means "127.0.0.1:0".
	SOCKSAddress string
	// PcapPath, if set, is a file where every frame the switch forwards,
	// from the machines and from its router, is recorded (pcap,
	// LINKTYPE_ETHERNET). A frame a fault drops as it enters is not.
	PcapPath string
	// Logger receives what the switch does; nil discards it.
	Logger *slog.Logger
}

var (
	defaultSubnet = netip.MustParsePrefix("10.1.0.0/24")
	portName      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
)

const (
	defaultLeaseTime = 30 * time.Second
	// maxSocketPath is the longest unix socket path Linux takes
	// (sizeof(sockaddr_un.sun_path) less the terminating NUL).
	maxSocketPath = 107
	// egressQueueLen is how many frames may wait for a port before it
	// drops more, as a switch does for a congested link.
	egressQueueLen = 512
	// fdbCapacity bounds the forwarding database, which guests fill with
	// any source address they like. Frames to addresses it has no room for
	// are flooded.
	fdbCapacity = 4096
)

type runState int

const (
	stateNew runState = iota
	stateRunning
	stateStopped
)

// Switch is a learning Ethernet switch with a router port; see the package
// documentation. New creates it, AddPort adds machine ports, and Run serves
// them until its context ends, then releases everything New and AddPort
// acquired.
type Switch struct {
	log        *slog.Logger
	dir        string
	subnet     netip.Prefix
	router     *router
	dhcp       *dhcpServer
	socks      net.Listener
	pcapFile   *os.File
	pcap       *pcapWriter
	routerPort *port

	mu    sync.Mutex
	state runState
	ports map[string]*port
	// ctx and cancel are Run's, set when it starts. cancel's cause is what
	// Run returns.
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	// fdb is the forwarding database: the port each source MAC address was
	// last seen on, at most fdbCapacity of them.
	fdbMu sync.Mutex
	fdb   map[string]*port
}

// port is where frames enter and leave the switch: a machine's unix socket,
// or the router.
type port struct {
	name   string
	fault  atomic.Pointer[Fault]
	egress chan egressFrame
	// Frames received from the port, sent to it, and dropped by a fault or
	// a full queue, since the port was added.
	framesIn, framesOut, framesDropped atomic.Uint64

	// Machine ports only: the socket qemu connects to, and its current
	// connection.
	listener *net.UnixListener
	connMu   sync.Mutex
	conn     net.Conn
}

type egressFrame struct {
	data []byte
	// due is when the frame may leave, after the faults' delays.
	due time.Time
}

func newPort(name string) *port {
	p := &port{name: name, egress: make(chan egressFrame, egressQueueLen)}
	p.fault.Store(&Fault{})
	return p
}

// New validates cfg and creates a switch: its userspace network stack, its
// SOCKS listener (so SOCKSAddr is known before Run) and its pcap file.
func New(cfg Config) (*Switch, error) {
	if cfg.Subnet == (netip.Prefix{}) {
		cfg.Subnet = defaultSubnet
	}
	if !cfg.Subnet.IsValid() || !cfg.Subnet.Addr().Is4() || cfg.Subnet.Bits() > 30 || cfg.Subnet.Masked() != cfg.Subnet {
		return nil, fmt.Errorf("subnet %v is not an IPv4 network of at least 4 addresses", cfg.Subnet)
	}
	if cfg.LeaseTime == 0 {
		cfg.LeaseTime = defaultLeaseTime
	}
	if cfg.LeaseTime < time.Second || cfg.LeaseTime/time.Second > math.MaxUint32 {
		return nil, fmt.Errorf("lease time %v is not between a second and 2^32 seconds", cfg.LeaseTime)
	}
	if cfg.SOCKSAddress == "" {
		cfg.SOCKSAddress = "127.0.0.1:0"
	}
	if st, err := os.Stat(cfg.Dir); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("socket directory %q is not a directory", cfg.Dir)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	routerAddr := cfg.Subnet.Addr().Next()
	r, err := newRouter(cfg.Subnet, routerAddr)
	if err != nil {
		return nil, err
	}
	s := &Switch{
		log:        log,
		dir:        cfg.Dir,
		subnet:     cfg.Subnet,
		router:     r,
		routerPort: newPort("router"),
		ports:      make(map[string]*port),
		fdb:        make(map[string]*port),
	}
	s.fdb[string(routerMAC)] = s.routerPort
	s.dhcp = &dhcpServer{
		leases:    newLeasePool(cfg.Subnet, routerAddr.Next()),
		routerMAC: routerMAC,
		routerIP:  routerAddr,
		netmask:   net.CIDRMask(cfg.Subnet.Bits(), 32),
		leaseTime: cfg.LeaseTime,
		log:       log,
	}
	s.socks, err = net.Listen("tcp", cfg.SOCKSAddress)
	if err != nil {
		s.router.close()
		return nil, fmt.Errorf("listening for SOCKS: %w", err)
	}
	if cfg.PcapPath != "" {
		if err := s.openPCAP(cfg.PcapPath); err != nil {
			s.socks.Close()
			s.router.close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Switch) openPCAP(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating pcap file: %w", err)
	}
	w, err := newPCAPWriter(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	s.pcapFile, s.pcap = f, w
	return nil
}

// AddPort creates the listening unix socket Dir/<name>.sock for one qemu
// stream netdev and returns its path. It may be called before Run or while
// it runs. The port accepts a new connection at any time, replacing the
// current one, so a restarted machine reconnects. Names are unique and made
// of [a-z0-9-].
func (s *Switch) AddPort(name string) (string, error) {
	if !portName.MatchString(name) {
		return "", fmt.Errorf("port name %q is not made of a-z, 0-9 and dashes", name)
	}
	path := filepath.Join(s.dir, name+".sock")
	if len(path) > maxSocketPath {
		return "", fmt.Errorf("socket path %q is %d bytes, longer than %d", path, len(path), maxSocketPath)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stateStopped {
		return "", errors.New("switch has stopped")
	}
	if _, ok := s.ports[name]; ok {
		return "", fmt.Errorf("port %q already exists", name)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return "", fmt.Errorf("port %q: %w", name, err)
	}
	p := newPort(name)
	p.listener = ln
	s.ports[name] = p
	if s.state == stateRunning {
		s.startPort(p)
	}
	return path, nil
}

// Run serves until ctx is done, then closes the ports, the SOCKS proxy and
// its connections, and the pcap file. It returns nil when ctx ends it, or
// the error that stopped the switch. A switch runs once.
func (s *Switch) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.mu.Lock()
	if s.state != stateNew {
		s.mu.Unlock()
		return errors.New("switch already ran")
	}
	s.state, s.ctx, s.cancel = stateRunning, ctx, cancel
	for _, p := range s.ports {
		s.startPort(p)
	}
	s.mu.Unlock()

	s.wg.Go(func() { s.runEgress(ctx, s.routerPort, s.toRouter) })
	s.wg.Go(func() { s.fromRouter(ctx) })
	s.wg.Go(func() { s.serveSOCKS(ctx) })
	s.log.Info("Switch running", "subnet", s.subnet, "router", s.RouterAddr(), "socks", s.SOCKSAddr())

	<-ctx.Done()
	s.mu.Lock()
	s.state = stateStopped
	for _, p := range s.ports {
		p.listener.Close()
	}
	s.mu.Unlock()
	s.socks.Close()
	s.wg.Wait()
	s.router.close()
	if s.pcapFile != nil {
		if err := s.pcapFile.Close(); err != nil {
			s.log.Warn("Closing pcap file failed", "err", err)
		}
	}
	err := context.Cause(ctx)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = nil
	}
	s.log.Info("Switch stopped", "err", err)
	return err
}

// fail stops Run with err.
func (s *Switch) fail(err error) {
	s.log.Error("Switch failed", "err", err)
	s.cancel(err)
}

// startPort starts serving p. It is called with s.mu held while running, so
// that s.wg never grows after Run started waiting for it.
func (s *Switch) startPort(p *port) {
	s.wg.Go(func() { s.runEgress(s.ctx, p, p.write) })
	s.wg.Go(func() { s.acceptPort(s.ctx, p) })
}

func (s *Switch) acceptPort(ctx context.Context, p *port) {
	for {
		c, err := p.listener.Accept()
		if err != nil {
			if ctx.Err() == nil {
				s.fail(fmt.Errorf("port %q: accepting: %w", p.name, err))
			}
			return
		}
		s.wg.Go(func() { s.serveConn(ctx, p, c) })
	}
}

// serveConn makes c the connection of p and forwards the frames it sends
// until it ends or is replaced.
func (s *Switch) serveConn(ctx context.Context, p *port, c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	p.connMu.Lock()
	old := p.conn
	p.conn = c
	p.connMu.Unlock()
	if old != nil {
		old.Close()
		s.log.Info("Port reconnected, dropped its previous connection", "port", p.name)
	} else {
		s.log.Info("Port connected", "port", p.name)
	}

	for {
		frame, err := qemu.ReadFrame(c)
		if err != nil {
			p.connMu.Lock()
			current := p.conn == c
			if current {
				p.conn = nil
			}
			p.connMu.Unlock()
			if current && ctx.Err() == nil {
				log := s.log.With("port", p.name, "framesIn", p.framesIn.Load(), "framesOut", p.framesOut.Load(), "framesDropped", p.framesDropped.Load())
				if errors.Is(err, io.EOF) {
					log.Info("Port disconnected")
				} else {
					log.Info("Port disconnected", "err", err)
				}
			}
			return
		}
		p.framesIn.Add(1)
		s.forward(p, frame)
	}
}

// write sends frame to p's machine, if one is connected. A failed write is
// not reported here: the connection's reader sees the same failure.
func (p *port) write(frame []byte) {
	p.connMu.Lock()
	c := p.conn
	p.connMu.Unlock()
	if c != nil && qemu.WriteFrame(c, frame) == nil {
		p.framesOut.Add(1)
	}
}

// forward takes a frame that arrived on src: it applies src's fault,
// records the frame, learns where its source is and queues it to the port of
// its destination, or to all other ports if that is unknown or a group.
func (s *Switch) forward(src *port, frame []byte) {
	if len(frame) < header.EthernetMinimumSize {
		s.log.Debug("Dropping runt frame", "port", src.name, "len", len(frame))
		return
	}
	eth := header.Ethernet(frame)
	srcMAC, dstMAC := eth.SourceAddress(), eth.DestinationAddress()
	if header.IsMulticastEthernetAddress(srcMAC) || (srcMAC == routerMAC && src != s.routerPort) {
		s.log.Debug("Dropping frame with invalid source address", "port", src.name, "src", net.HardwareAddr(srcMAC))
		return
	}
	now := time.Now()
	fault := src.fault.Load()
	if fault.drops() {
		src.framesDropped.Add(1)
		return
	}
	if s.pcap != nil {
		if err := s.pcap.write(now, frame); err != nil {
			s.log.Warn("Capture stopped", "err", err)
		}
	}
	due := now.Add(fault.Delay)

	// Group addresses are never learnt, so they are never known.
	s.fdbMu.Lock()
	if _, ok := s.fdb[string(srcMAC)]; ok || len(s.fdb) < fdbCapacity {
		s.fdb[string(srcMAC)] = src
	}
	dst, known := s.fdb[string(dstMAC)]
	s.fdbMu.Unlock()
	if known {
		// A frame to a machine on the port it came from needs no forwarding.
		if dst != src {
			dst.enqueue(frame, due)
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.ports {
		if p != src {
			p.enqueue(frame, due)
		}
	}
	if src != s.routerPort {
		s.routerPort.enqueue(frame, due)
	}
}

// enqueue applies p's fault to a frame bound for p and queues it, or drops
// it if the queue is full. It never blocks.
func (p *port) enqueue(frame []byte, due time.Time) {
	fault := p.fault.Load()
	if fault.drops() {
		p.framesDropped.Add(1)
		return
	}
	select {
	case p.egress <- egressFrame{data: frame, due: due.Add(fault.Delay)}:
	default:
		p.framesDropped.Add(1)
	}
}

// runEgress hands the frames queued for p to deliver in order, each when it
// is due.
func (s *Switch) runEgress(ctx context.Context, p *port, deliver func([]byte)) {
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-p.egress:
			if wait := time.Until(f.due); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			deliver(f.data)
		}
	}
}

// SOCKSAddr returns the host address of the SOCKS5 proxy, as "IP:port".
func (s *Switch) SOCKSAddr() string {
	return s.socks.Addr().String()
}

// RouterAddr returns the switch's own address in the subnet, which is the
// machines' default gateway and DHCP server.
func (s *Switch) RouterAddr() netip.Addr {
	return s.dhcp.routerIP
}

// Leases returns the addresses DHCP handed out, by MAC address (lowercase,
// colon-separated).
func (s *Switch) Leases() map[string]netip.Addr {
	return s.dhcp.leases.snapshot()
}
