package clusternet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"metropolis.dev/metropolis/node"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/curator/watcher"
	"metropolis.dev/metropolis/node/core/localstorage/declarative"
	"metropolis.dev/metropolis/node/core/netprobe"
	"metropolis.dev/metropolis/node/core/network"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/supervisor"
)

// Backoff between attempts to publish what the curator did not accept, for
// example an external address it has not been told about yet.
const (
	publishInitialBackoff = 500 * time.Millisecond
	publishMaxBackoff     = 10 * time.Second
)

// Service is the node's side of the mesh. Run it with Run once the node is
// a member of its cluster.
type Service struct {
	// PrivateKey is the file holding the node's WireGuard key, on its
	// encrypted data partition. It is created on the first run.
	PrivateKey *declarative.File
	// Network is the node's network status. The mesh waits for an external
	// address, publishes it as its endpoint and sizes its MTU after the
	// interface holding it.
	Network event.Watchable[*network.Status]

	mu    sync.Mutex
	state State
	link  *Link
}

// State is what the service has set up so far.
type State struct {
	// PublicKey is the node's WireGuard key, zero until the service
	// started.
	PublicKey wgtypes.Key
	// Port is where the node's WireGuard listens.
	Port int
	// MeshAddress is the node's address in the mesh, invalid until the
	// curator assigned it.
	MeshAddress netip.Addr
	// Peers are the peers as last configured.
	Peers []Peer
}

// Run sets up the node's WireGuard interface and firewall, publishes the
// node's key and external address through curator, and keeps the peers in
// line with the cluster's nodes. It also receives the probe traffic other
// nodes send for NodeManagement.ProbePeer (netprobe), from peers only.
// nodeID is this node's ID.
func (s *Service) Run(ctx context.Context, curator ipb.CuratorClient, nodeID string) error {
	log := supervisor.Logger(ctx)
	if err := ApplyFirewall(InterfaceName); err != nil {
		return err
	}
	key, err := s.loadKey()
	if err != nil {
		return err
	}
	external, err := s.externalAddress(ctx)
	if err != nil {
		return err
	}
	mtu, err := interfaceMTU(external)
	if err != nil {
		return err
	}
	link, err := SetUp(LinkConfig{PrivateKey: key, Port: node.WireGuardPort, UplinkMTU: mtu})
	if err != nil {
		return err
	}
	defer link.Close()
	log.Infof("Mesh interface %s up: key %s, port %d, MTU %d (uplink %d).", InterfaceName, key.PublicKey(), node.WireGuardPort, mtu-wireguardOverhead, mtu)
	s.mu.Lock()
	s.link = link
	s.state = State{PublicKey: key.PublicKey(), Port: node.WireGuardPort}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.link = nil
		s.mu.Unlock()
	}()

	if err := supervisor.Run(ctx, "publish", func(ctx context.Context) error {
		return s.publish(ctx, curator, link, key.PublicKey())
	}); err != nil {
		return err
	}
	if err := supervisor.Run(ctx, "peers", func(ctx context.Context) error {
		return s.followPeers(ctx, curator, link, nodeID)
	}); err != nil {
		return err
	}
	probe := &netprobe.Server{Allowed: s.isPeerAddress}
	if err := supervisor.Run(ctx, "probe", probe.Run); err != nil {
		return err
	}
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	<-ctx.Done()
	return ctx.Err()
}

// loadKey reads the node's WireGuard key, generating and saving one if the
// node has none yet.
func (s *Service) loadKey() (wgtypes.Key, error) {
	raw, err := s.PrivateKey.Read()
	if err == nil {
		key, err := wgtypes.ParseKey(string(raw))
		if err != nil {
			return wgtypes.Key{}, fmt.Errorf("WireGuard key in %s: %w", s.PrivateKey.FullPath(), err)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return wgtypes.Key{}, fmt.Errorf("reading the WireGuard key: %w", err)
	}
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("generating a WireGuard key: %w", err)
	}
	if err := s.PrivateKey.Write([]byte(key.String()), 0o600); err != nil {
		return wgtypes.Key{}, fmt.Errorf("saving the WireGuard key: %w", err)
	}
	return key, nil
}

// externalAddress waits until the node has an external address.
func (s *Service) externalAddress(ctx context.Context) (netip.Addr, error) {
	w := s.Network.Watch()
	defer w.Close()
	for {
		st, err := w.Get(ctx)
		if err != nil {
			return netip.Addr{}, err
		}
		if addr, ok := netip.AddrFromSlice(st.ExternalAddress); ok {
			return addr.Unmap(), nil
		}
	}
}

// interfaceMTU returns the MTU of the interface holding addr, through which
// the mesh's packets leave.
func interfaceMTU(addr netip.Addr) (int, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return 0, fmt.Errorf("listing addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
			link, err := netlink.LinkByIndex(a.LinkIndex)
			if err != nil {
				return 0, fmt.Errorf("finding the interface of %s: %w", addr, err)
			}
			return link.Attrs().MTU, nil
		}
	}
	return 0, fmt.Errorf("no interface holds the external address %s", addr)
}

// publish tells the curator the node's key and external address whenever
// the address changes, retrying until the curator accepts, and gives the
// interface the mesh address the curator answers with.
func (s *Service) publish(ctx context.Context, curator ipb.CuratorClient, link *Link, key wgtypes.Key) error {
	log := supervisor.Logger(ctx)
	netC := make(chan *network.Status)
	if err := supervisor.Run(ctx, "map-network", event.Pipe(s.Network, netC)); err != nil {
		return err
	}
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	var (
		want, published netip.Addr
		retry           <-chan time.Time
		backoff         = publishInitialBackoff
	)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case st := <-netC:
			if addr, ok := netip.AddrFromSlice(st.ExternalAddress); ok {
				want = addr.Unmap()
			}
		case <-retry:
			retry = nil
		}
		if !want.IsValid() || want == published || retry != nil {
			continue
		}
		res, err := curator.UpdateNodeClusterNetworking(ctx, &ipb.UpdateNodeClusterNetworkingRequest{
			Clusternet: &cpb.NodeClusterNetworking{
				WireguardPubkey: key.String(),
				Prefixes:        []*cpb.NodeClusterNetworking_Prefix{{Cidr: netip.PrefixFrom(want, want.BitLen()).String()}},
			},
		})
		if err != nil {
			log.Warningf("Publishing the mesh key and endpoint %s failed, retrying in %v: %v", want, backoff, err)
			retry = time.After(backoff)
			backoff = min(2*backoff, publishMaxBackoff)
			continue
		}
		backoff = publishInitialBackoff
		mesh, err := netip.ParseAddr(res.MeshAddress)
		if err != nil || !node.MeshAddresses.Contains(mesh) {
			return fmt.Errorf("curator assigned mesh address %q, not an address within %s", res.MeshAddress, node.MeshAddresses)
		}
		if err := link.SetAddress(mesh); err != nil {
			return err
		}
		published = want
		s.mu.Lock()
		changed := s.state.MeshAddress != mesh
		s.state.MeshAddress = mesh
		s.mu.Unlock()
		if changed {
			log.Infof("Published the mesh key with endpoint %s; mesh address %s.", want, mesh)
		} else {
			log.Infof("Published the mesh endpoint %s.", want)
		}
	}
}

// followPeers configures every other node of the cluster as a peer, and
// removes those that are gone, after each batch of changes the curator
// reports.
func (s *Service) followPeers(ctx context.Context, curator ipb.CuratorClient, link *Link, self string) error {
	log := supervisor.Logger(ctx)
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	var configured []Peer
	return watcher.WatchAllNodes(ctx, curator, func(nodes map[string]*ipb.Node) error {
		list := slices.Collect(maps.Values(nodes))
		peers := Peers(self, list, node.WireGuardPort)
		if slices.EqualFunc(peers, configured, equalPeers) {
			return nil
		}
		if err := link.SetPeers(peers); err != nil {
			return err
		}
		added, removed, changed := diffPeers(configured, peers)
		log.Infof("Mesh peers: %d (added %v, removed %v, changed %v).", len(peers), added, removed, changed)
		configured = peers
		s.mu.Lock()
		s.state.Peers = peers
		s.mu.Unlock()
		return nil
	})
}

// isPeerAddress says whether addr is the external or mesh address of a
// configured peer: only the cluster's nodes may send probe traffic.
func (s *Service) isPeerAddress(addr netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.state.Peers, func(p Peer) bool {
		return p.Endpoint.Addr() == addr || p.MeshAddress == addr
	})
}

// State returns what the service has set up so far; its zero value if it
// does not run.
func (s *Service) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state
	st.Peers = slices.Clone(st.Peers)
	return st
}

// Device reads the kernel's view of the mesh interface: each peer's last
// handshake and traffic.
func (s *Service) Device() (*wgtypes.Device, error) {
	s.mu.Lock()
	link := s.link
	s.mu.Unlock()
	if link == nil {
		return nil, errors.New("the mesh is not running")
	}
	return link.Device()
}

func equalPeers(a, b Peer) bool {
	return a.NodeID == b.NodeID && a.PublicKey == b.PublicKey && a.Endpoint == b.Endpoint &&
		a.MeshAddress == b.MeshAddress && slices.Equal(a.Prefixes, b.Prefixes)
}

// diffPeers names the nodes added, removed and changed between old and new,
// both sorted by node ID.
func diffPeers(old, new []Peer) (added, removed, changed []string) {
	byID := make(map[string]Peer, len(old))
	for _, p := range old {
		byID[p.NodeID] = p
	}
	for _, p := range new {
		was, ok := byID[p.NodeID]
		switch {
		case !ok:
			added = append(added, p.NodeID)
		case !equalPeers(was, p):
			changed = append(changed, p.NodeID)
		}
		delete(byID, p.NodeID)
	}
	for _, p := range old {
		if _, ok := byID[p.NodeID]; ok {
			removed = append(removed, p.NodeID)
		}
	}
	return added, removed, changed
}
