package launch

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"metropolis.dev/metropolis/cli/metroctl/core"
	"metropolis.dev/metropolis/node"
	"metropolis.dev/metropolis/node/core/rpc"
	"metropolis.dev/metropolis/node/core/rpc/resolver"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/metropolis/test/nanoswitch"
	"metropolis.dev/osbase/test/qemu"
)

// NodeNumberLabel is the label every launched node carries, with the node's
// index (0 to NumNodes-1) as value, so that the cluster's nodes can be told
// apart before their IDs are known.
const NodeNumberLabel = "test-node-number"

// Cluster is a running test cluster. Its exported fields are set by
// LaunchCluster and not changed afterwards.
type Cluster struct {
	// NodeIDs are the nodes' IDs, in the order of their indices.
	NodeIDs []string
	// Owner is the owner certificate with the owner's key.
	Owner tls.Certificate
	// CA is the cluster CA.
	CA *x509.Certificate
	// MetroctlDir is a metroctl configuration directory for the cluster:
	// owner key and certificate and the trusted CA (see MetroctlFlags).
	MetroctlDir string
	// SOCKSAddr is the switch's SOCKS5 proxy (host:port), through which
	// programs on the host reach the nodes.
	SOCKSAddr string
	// Switch is the network the nodes are on.
	Switch *nanoswitch.Switch
	// Timings says how long the launch took.
	Timings Timings

	opts   ClusterOptions
	dir    string
	ownDir bool
	// ctx lives until Close: the VMs, the switch and the resolver run in
	// it, so that they outlive the context of LaunchCluster.
	ctx        context.Context
	cancel     context.CancelFunc
	switchLog  *os.File
	switchDone chan struct{}
	switchErr  error // set before switchDone is closed
	machines   []*machine
	ports      []string
	resolver   *resolver.Resolver
	// conn is the cluster's own connection to the curator leader.
	conn *grpc.ClientConn

	mu        sync.Mutex
	addresses []netip.Addr
	// consensus holds the indices of nodes known to run a curator.
	consensus map[int]bool

	closeOnce sync.Once
	closeErr  error
}

// Timings says how long the steps of a launch took.
type Timings struct {
	// ImageBuild is the build of the node image; zero if it was given.
	ImageBuild time.Duration
	// NodeUp is, for each node, the time from its VM's start until the
	// cluster listed it as UP and HEALTHY; zero for nodes left NEW.
	NodeUp []time.Duration
	// Total is the whole launch, image build included.
	Total time.Duration
}

// LaunchCluster starts a cluster of opts.NumNodes nodes and returns once
// every node is UP and HEALTHY (unless opts.LeaveNodesNew), with the caller
// as its owner. The cluster runs until Close, which must be called, also
// after ctx is done; ctx only bounds the launch. On error, everything
// started is stopped again.
func LaunchCluster(ctx context.Context, opts ClusterOptions) (cl *Cluster, err error) {
	start := time.Now()
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkHostTools(); err != nil {
		return nil, err
	}
	c := &Cluster{
		opts:      opts,
		addresses: make([]netip.Addr, opts.NumNodes),
		consensus: map[int]bool{0: true},
		Timings:   Timings{NodeUp: make([]time.Duration, opts.NumNodes)},
	}
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			if cerr := c.Close(); cerr != nil {
				err = fmt.Errorf("%w (and cleaning up: %v)", err, cerr)
			}
			cl = nil
		}
	}()
	if err := c.setupDir(); err != nil {
		return nil, err
	}
	opts.Logf("Launching a cluster of %d node(s) in %s.", opts.NumNodes, c.dir)

	image := opts.Image
	if image == "" {
		s := c.beginStep("Building the node image")
		image = filepath.Join(c.dir, "node.img")
		if err := BuildImage(ctx, image, opts.Logf); err != nil {
			return nil, fmt.Errorf("building the node image: %w", err)
		}
		c.Timings.ImageBuild = s.done()
	} else if _, err := os.Stat(image); err != nil {
		return nil, fmt.Errorf("node image: %w", err)
	}

	c.MetroctlDir = filepath.Join(c.dir, "metroctl")
	cfg := core.Config{Dir: c.MetroctlDir}
	ownerKey, _, err := cfg.EnsureOwnerKey()
	if err != nil {
		return nil, err
	}
	if err := c.startSwitch(); err != nil {
		return nil, err
	}
	if err := c.createMachines(ctx, image); err != nil {
		return nil, err
	}

	if err := c.bootstrap(ctx, ownerKey); err != nil {
		return nil, err
	}
	if err := cfg.SaveOwnerCertificate(c.Owner.Leaf.Raw); err != nil {
		return nil, err
	}
	if err := cfg.SaveTrustedCA(c.CA); err != nil {
		return nil, err
	}
	c.resolver = resolver.New(c.ctx)
	c.resolver.AddEndpoint(resolver.NodeByHostPort(c.NodeAddress(0).String(), node.CuratorServicePort))
	c.conn, err = c.CuratorClient()
	if err != nil {
		return nil, err
	}
	if err := c.waitNodeZeroUp(ctx); err != nil {
		return nil, err
	}
	if opts.NumNodes > 1 {
		if err := c.register(ctx); err != nil {
			return nil, err
		}
	}
	if err := c.waitAllUp(ctx); err != nil {
		return nil, err
	}
	c.Timings.Total = time.Since(start)
	opts.Logf("Cluster of %d node(s) launched in %s.", opts.NumNodes, c.Timings.Total.Round(100*time.Millisecond))
	return c, nil
}

// setupDir creates the launch directory.
func (c *Cluster) setupDir() error {
	if c.opts.Dir == "" {
		dir, err := os.MkdirTemp("", "launch-")
		if err != nil {
			return fmt.Errorf("creating the launch directory: %w", err)
		}
		c.dir, c.ownDir = dir, true
		return nil
	}
	dir, err := filepath.Abs(c.opts.Dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating the launch directory: %w", err)
	}
	c.dir = dir
	return nil
}

// CapturePath is the file the switch captures every frame between the
// machines into, as it goes (see nanoswitch.ReadCapture).
func (c *Cluster) CapturePath() string {
	return filepath.Join(c.dir, "nanoswitch.pcap")
}

// startSwitch starts the switch, logging to nanoswitch.txt and capturing
// packets into CapturePath.
func (c *Cluster) startSwitch() error {
	f, err := os.Create(filepath.Join(c.dir, "nanoswitch.txt"))
	if err != nil {
		return fmt.Errorf("creating the switch's log: %w", err)
	}
	c.switchLog = f
	sockets := filepath.Join(c.dir, "switch")
	if err := os.Mkdir(sockets, 0o755); err != nil {
		return fmt.Errorf("creating the switch's socket directory: %w", err)
	}
	sw, err := nanoswitch.New(nanoswitch.Config{
		Dir:      sockets,
		PcapPath: c.CapturePath(),
		Logger:   slog.New(slog.NewTextHandler(f, nil)),
	})
	if err != nil {
		return fmt.Errorf("creating the switch: %w", err)
	}
	c.Switch = sw
	c.switchDone = make(chan struct{})
	go func() {
		c.switchErr = sw.Run(c.ctx)
		close(c.switchDone)
	}()
	c.SOCKSAddr = sw.SOCKSAddr()
	return nil
}

// checkSwitch returns an error if the switch stopped.
func (c *Cluster) checkSwitch() error {
	select {
	case <-c.switchDone:
		return fmt.Errorf("the switch stopped: %v", c.switchErr)
	default:
		return nil
	}
}

// createMachines creates every node's machine and its port on the switch.
func (c *Cluster) createMachines(ctx context.Context, image string) error {
	diskBytes, err := ParseSize(c.opts.Node.DiskSize)
	if err != nil {
		return err
	}
	for i := range c.opts.NumNodes {
		m, err := newMachine(ctx, c.dir, i, image, diskBytes)
		if err != nil {
			return err
		}
		c.machines = append(c.machines, m)
		port := "node-" + strconv.Itoa(i)
		if m.socket, err = c.Switch.AddPort(port); err != nil {
			return fmt.Errorf("adding node %d's port to the switch: %w", i, err)
		}
		c.ports = append(c.ports, port)
		if c.opts.NodeConsole != nil {
			m.console = func(line string) { c.opts.NodeConsole(i, line) }
		} else if err := m.logToFile(filepath.Join(c.dir, "node-"+strconv.Itoa(i)+".txt")); err != nil {
			return err
		}
	}
	return nil
}

// nodeLabels returns the labels node i registers with.
func nodeLabels(i int) []string {
	return []string{NodeNumberLabel + "=" + strconv.Itoa(i)}
}

// bootstrap starts node 0 with parameters that make it bootstrap the
// cluster for ownerKey, and takes ownership of it.
func (c *Cluster) bootstrap(ctx context.Context, ownerKey ed25519.PrivateKey) error {
	params, err := core.BootstrapParameters(core.Bootstrap{
		OwnerKey:        ownerKey.Public().(ed25519.PublicKey),
		Domain:          c.opts.ClusterDomain,
		TPMMode:         c.opts.TPMMode,
		StorageSecurity: c.opts.StorageSecurity,
		Labels:          nodeLabels(0),
	})
	if err != nil {
		return err
	}
	m := c.machines[0]
	if err := m.setParameters(params); err != nil {
		return err
	}
	s := c.beginStep("Starting node 0, which bootstraps the cluster")
	if err := m.start(c.ctx, c.opts.Node); err != nil {
		return err
	}
	if err := c.waitLease(ctx, 0, bootstrapTimeout); err != nil {
		return err
	}
	c.opts.Logf("Node 0 has address %s.", c.NodeAddress(0))
	if err := c.takeOwnership(ctx, ownerKey); err != nil {
		return err
	}
	s.done()
	return nil
}

// waitLease waits until the switch leased an address to node i, and
// records it.
func (c *Cluster) waitLease(ctx context.Context, i int, timeout time.Duration) error {
	m := c.machines[i]
	return c.poll(ctx, fmt.Sprintf("node %d has an address", i), timeout, []*machine{m}, func(context.Context) error {
		a, ok := m.address(c.Switch.Leases())
		if !ok {
			return errors.New("the switch has leased it no address yet")
		}
		c.setAddress(i, a)
		return nil
	})
}

// waitNodeZeroUp waits until the cluster lists node 0 as UP and HEALTHY,
// and records its ID.
func (c *Cluster) waitNodeZeroUp(ctx context.Context) error {
	m := c.machines[0]
	return c.poll(ctx, "the cluster lists node 0 as UP and HEALTHY", bootstrapTimeout, c.machines[:1], func(ctx context.Context) error {
		nodes, err := core.GetNodes(ctx, c.ManagementClient(), "")
		if err != nil {
			return err
		}
		n := byNodeNumber(nodes)[0]
		if n == nil {
			return fmt.Errorf("no node with label %s=0 among the %d listed", NodeNumberLabel, len(nodes))
		}
		if n.State != cpb.NodeState_NODE_STATE_UP || n.Health != apb.Node_HEALTH_HEALTHY {
			return fmt.Errorf("node 0 (%s) is %s and %s", n.Id, stateName(n.State), healthName(n.Health))
		}
		// Nodes register through the addresses in the cluster directory,
		// which lists only nodes that reported one.
		if n.GetStatus().GetExternalAddress() == "" {
			return fmt.Errorf("node 0 (%s) is UP but has reported no address yet", n.Id)
		}
		c.NodeIDs = []string{n.Id}
		c.Timings.NodeUp[0] = time.Since(m.startedAt())
		return nil
	})
}

// register starts nodes 1 to NumNodes-1 with parameters that make them
// register into the cluster, waits until all registered, and unless
// LeaveNodesNew, approves them.
func (c *Cluster) register(ctx context.Context) error {
	n := c.opts.NumNodes
	s := c.beginStep("Starting nodes 1 to %d, which register into the cluster", n-1)
	for i := 1; i < n; i++ {
		callCtx, cancel := context.WithTimeout(ctx, qemu.Timeout(callTimeout))
		params, err := core.RegisterParameters(callCtx, c.ManagementClient(), nodeLabels(i))
		cancel()
		if err != nil {
			return fmt.Errorf("node %d's parameters: %w", i, err)
		}
		if err := c.machines[i].setParameters(params); err != nil {
			return err
		}
		if err := c.machines[i].start(c.ctx, c.opts.Node); err != nil {
			return err
		}
	}
	c.NodeIDs = append(c.NodeIDs, make([]string, n-1)...)
	timeout := registerTimeout + time.Duration(n-2)*extraNodeTimeout
	err := c.poll(ctx, fmt.Sprintf("nodes 1 to %d registered", n-1), timeout, c.machines, func(ctx context.Context) error {
		nodes, err := core.GetNodes(ctx, c.ManagementClient(), "")
		if err != nil {
			return err
		}
		byNumber := byNodeNumber(nodes)
		var missing []string
		for i := 1; i < n; i++ {
			if nd := byNumber[i]; nd != nil {
				c.NodeIDs[i] = nd.Id
			} else {
				missing = append(missing, strconv.Itoa(i))
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("not registered yet: node(s) %s", strings.Join(missing, ", "))
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.done()
	for i := 1; i < n; i++ {
		if err := c.waitLease(ctx, i, callTimeout); err != nil {
			return err
		}
	}
	if c.opts.LeaveNodesNew {
		c.opts.Logf("Leaving nodes 1 to %d NEW, as asked.", n-1)
		return nil
	}
	for _, id := range c.NodeIDs[1:] {
		if err := c.ApproveNode(ctx, id); err != nil {
			return err
		}
	}
	c.opts.Logf("Approved nodes 1 to %d.", n-1)
	return nil
}

// waitAllUp waits until every node (or, with LeaveNodesNew, node 0) is UP
// and HEALTHY, recording when each was first seen so.
func (c *Cluster) waitAllUp(ctx context.Context) error {
	ids := c.NodeIDs
	if c.opts.LeaveNodesNew {
		ids = ids[:1]
	}
	s := c.beginStep("Waiting until %d node(s) are UP and HEALTHY", len(ids))
	timeout := upTimeout + time.Duration(max(len(ids)-2, 0))*extraNodeTimeout
	err := c.poll(ctx, "every node is UP and HEALTHY", timeout, c.machines, func(ctx context.Context) error {
		nodes, err := core.GetNodes(ctx, c.ManagementClient(), "")
		if err != nil {
			return err
		}
		for _, n := range nodes {
			i := c.indexOf(n.Id)
			if i < 0 || n.State != cpb.NodeState_NODE_STATE_UP {
				continue
			}
			if c.Timings.NodeUp[i] == 0 && n.Health == apb.Node_HEALTH_HEALTHY {
				c.Timings.NodeUp[i] = time.Since(c.machines[i].startedAt())
				c.opts.Logf("Node %d (%s) is UP and HEALTHY, %s after its start.", i, n.Id, c.Timings.NodeUp[i].Round(time.Second))
			}
			if a, err := netip.ParseAddr(n.GetStatus().GetExternalAddress()); err == nil {
				c.setAddress(i, a)
			}
		}
		return c.healthProblems(nodes, ids)
	})
	if err != nil {
		return err
	}
	s.done()
	return nil
}

// byNodeNumber maps the value of NodeNumberLabel to the node carrying it.
func byNodeNumber(nodes []*apb.Node) map[int]*apb.Node {
	res := map[int]*apb.Node{}
	for _, n := range nodes {
		if i, err := strconv.Atoi(node.GetNodeLabel(n.Labels, NodeNumberLabel)); err == nil {
			res[i] = n
		}
	}
	return res
}

// healthProblems returns an error naming each node of ids that nodes do not
// list as UP and HEALTHY, and nil if there is none.
func (c *Cluster) healthProblems(nodes []*apb.Node, ids []string) error {
	byID := map[string]*apb.Node{}
	for _, n := range nodes {
		byID[n.Id] = n
	}
	var problems []string
	for _, id := range ids {
		n := byID[id]
		switch {
		case n == nil:
			problems = append(problems, fmt.Sprintf("%s: not in the cluster", c.describeNode(id)))
		case n.State != cpb.NodeState_NODE_STATE_UP || n.Health != apb.Node_HEALTH_HEALTHY:
			problems = append(problems, fmt.Sprintf("%s: %s, %s", c.describeNode(id), stateName(n.State), healthName(n.Health)))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("not UP and HEALTHY: %s", strings.Join(problems, "; "))
	}
	return nil
}

// describeNode names a node by index and ID, or by ID if it was not
// launched by c.
func (c *Cluster) describeNode(id string) string {
	if i := c.indexOf(id); i >= 0 {
		return fmt.Sprintf("node %d (%s)", i, id)
	}
	return "node " + id
}

func stateName(s cpb.NodeState) string { return strings.TrimPrefix(s.String(), "NODE_STATE_") }

func healthName(h apb.Node_Health) string { return strings.TrimPrefix(h.String(), "HEALTH_") }

// indexOf returns the index of the node with ID id, or -1.
func (c *Cluster) indexOf(id string) int {
	if id == "" {
		return -1
	}
	return slices.Index(c.NodeIDs, id)
}

func (c *Cluster) setAddress(i int, a netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addresses[i] = a
}

// NodeAddress returns node i's address on the switch, or the zero Addr if
// it is not known. Node 0 always has the switch's first address (10.1.0.2);
// the others get theirs in the order they asked for one, and keep it across
// restarts.
func (c *Cluster) NodeAddress(i int) netip.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.addresses) {
		return netip.Addr{}
	}
	return c.addresses[i]
}

// NodePort returns the name of node i's port on the switch, as
// Switch.SetFault takes it, or "" if there is no node i.
func (c *Cluster) NodePort(i int) string {
	if i < 0 || i >= len(c.ports) {
		return ""
	}
	return c.ports[i]
}

// Console returns the serial console of node i's VM, or nil if it does not
// run.
func (c *Cluster) Console(i int) *qemu.Console {
	if i < 0 || i >= len(c.machines) {
		return nil
	}
	if vm := c.machines[i].running(); vm != nil {
		return vm.Console()
	}
	return nil
}

// dial connects to address on the switch's network.
func (c *Cluster) dial(ctx context.Context, address string) (net.Conn, error) {
	return c.Switch.DialContext(ctx, "tcp", address)
}

// CuratorClient returns a new connection to the curator leader, wherever it
// runs, authenticated as the owner and made through the switch. Calls wait
// for the leader to be reachable, so give them a deadline. The caller
// closes it.
func (c *Cluster) CuratorClient() (*grpc.ClientConn, error) {
	cc, err := grpc.NewClient(resolver.Scheme+":///control",
		grpc.WithTransportCredentials(rpc.NewAuthenticatedCredentials(c.Owner, rpc.WantRemoteCluster(c.CA))),
		grpc.WithContextDialer(c.dial),
		grpc.WithResolvers(c.resolver),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)),
		rpc.ClientKeepalive(),
	)
	if err != nil {
		return nil, fmt.Errorf("connecting to the curator: %w", err)
	}
	return cc, nil
}

// ManagementClient returns a Management client on the cluster's own
// connection to the curator leader. Calls wait for the leader to be
// reachable, so give them a deadline.
func (c *Cluster) ManagementClient() apb.ManagementClient {
	return apb.NewManagementClient(c.conn)
}

// Close stops every node and the switch, and removes the launch directory if
// LaunchCluster created it. It can be called more than once.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		var errs []error
		if c.conn != nil {
			c.conn.Close()
		}
		if c.resolver != nil {
			c.resolver.Close()
		}
		stopErrs := make([]error, len(c.machines))
		var wg sync.WaitGroup
		for i, m := range c.machines {
			wg.Go(func() { stopErrs[i] = m.stop() })
		}
		wg.Wait()
		errs = append(errs, stopErrs...)
		c.cancel()
		if c.switchDone != nil {
			<-c.switchDone
			if c.switchErr != nil && !errors.Is(c.switchErr, context.Canceled) {
				errs = append(errs, fmt.Errorf("switch: %w", c.switchErr))
			}
		}
		for _, m := range c.machines {
			errs = append(errs, m.closeLog())
		}
		if c.switchLog != nil {
			errs = append(errs, c.switchLog.Close())
		}
		if c.ownDir {
			if err := os.RemoveAll(c.dir); err != nil {
				errs = append(errs, fmt.Errorf("removing the launch directory: %w", err))
			}
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}
