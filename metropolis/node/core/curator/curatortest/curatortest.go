// Package curatortest runs real curators in a test process: each with its
// own embedded etcd member (consensus) on its own loopback address, so that
// tests exercise the curator's gRPC APIs over real TLS, the leader election
// and etcd itself, without VMs.
//
// A Cluster bootstraps its first curator the way the first node of a
// cluster does (consensus bootstrap, then curator.BootstrapNodeFinish) and
// adds further curators the way the cluster does: each is registered,
// approved and committed as a node, given the ConsensusMember role, and
// joins etcd with what that role carries. The owner's certificate is
// obtained through AAA.Escrow. Nodes without a curator are simulated by Node:
// keys and credentials that go through registration like a real node.
//
// Every Cluster uses its own random 127.a.b.0/24 subnet of the loopback
// network (curator i at 127.a.b.(i+2)), so that clusters of concurrently
// running test binaries never collide on the fixed curator and consensus
// ports.
package curatortest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"metropolis.dev/metropolis/node"
	"metropolis.dev/metropolis/node/core/consensus"
	"metropolis.dev/metropolis/node/core/curator"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/metropolis/node/core/rpc"
	"metropolis.dev/metropolis/node/core/rpc/resolver"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/logtree"
	"metropolis.dev/osbase/supervisor"
)

// MaxCurators is the most curators a Cluster runs.
const MaxCurators = 5

// Options configure a Cluster.
type Options struct {
	// Curators is the number of curators, 1 to MaxCurators. Zero means 1.
	Curators int
	// Configuration is the cluster's initial configuration; nil means the
	// defaults (TPM required, encrypted and authenticated storage), which
	// simulated nodes satisfy.
	Configuration *cpb.ClusterConfiguration
	// BootstrapLabels are the labels of the bootstrap node.
	BootstrapLabels *cpb.NodeLabels
	// LeaderTTL of the curators; zero means the curator's default.
	LeaderTTL time.Duration
	// Verbose streams all logs of the cluster to the test log. Otherwise
	// they are printed only if the test fails.
	Verbose bool
}

// Cluster is a running cluster of curators.
type Cluster struct {
	// CA is the cluster CA certificate.
	CA *x509.Certificate
	// OwnerKey is the owner's private key, given at bootstrap.
	OwnerKey ed25519.PrivateKey
	// Owner is the owner's certificate, escrowed through AAA.
	Owner tls.Certificate
	// Curators are the cluster's curators; Curators[0] bootstrapped it.
	Curators []*Curator

	opts Options
	ctx  context.Context
	// subnet is the "127.a.b." prefix of the cluster's addresses.
	subnet string

	mu sync.Mutex
	// simulated counts simulated nodes, for their addresses.
	simulated int
	// conns are closed when the test ends.
	conns []*grpc.ClientConn
	owner *grpc.ClientConn
}

// Curator is a node running consensus and a curator.
type Curator struct {
	// Host is the loopback address the curator and its etcd member listen
	// on.
	Host string
	// Node is the curator's node identity.
	Node *Node
	// Consensus is the node's etcd member.
	Consensus *consensus.Service

	cluster *Cluster
	logs    *logtree.LogTree
	// mu guards the running curator.
	mu         sync.Mutex
	stopTree   context.CancelFunc
	treeDone   <-chan struct{}
	generation int
}

// New starts a Cluster for the duration of the test t. It fails the test
// if the cluster does not come up.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Curators == 0 {
		opts.Curators = 1
	}
	if opts.Curators < 1 || opts.Curators > MaxCurators {
		t.Fatalf("curatortest: %d curators requested, 1 to %d are supported", opts.Curators, MaxCurators)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := &Cluster{opts: opts, ctx: ctx, subnet: randomSubnet()}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c.OwnerKey = key
	t.Cleanup(c.closeConns)

	startCtx, cancelStart := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelStart()
	if err := c.bootstrap(startCtx, t); err != nil {
		t.Fatalf("curatortest: bootstrapping: %v", err)
	}
	for i := 1; i < opts.Curators; i++ {
		if err := c.addCurator(startCtx, t, i); err != nil {
			t.Fatalf("curatortest: adding curator %d: %v", i, err)
		}
	}
	// All curators stop before any etcd member does, so that none of them
	// has to wait for a consensus that lost its quorum.
	t.Cleanup(c.stopCurators)
	return c
}

// randomSubnet picks a 127.a.b. prefix.
func randomSubnet() string {
	n, err := rand.Int(rand.Reader, big.NewInt(254*254))
	if err != nil {
		panic(err)
	}
	v := int(n.Int64())
	return fmt.Sprintf("127.%d.%d.", v/254+1, v%254+1)
}

// curatorHost is the address of curator i.
func (c *Cluster) curatorHost(i int) string {
	return fmt.Sprintf("%s%d", c.subnet, i+2)
}

func (c *Cluster) bootstrap(ctx context.Context, t testing.TB) error {
	n, err := c.NewNode(NodeOptions{Host: c.curatorHost(0)})
	if err != nil {
		return err
	}
	cur, err := c.newCurator(t, 0, n, nil)
	if err != nil {
		return err
	}
	st, err := cur.consensusStatus(ctx)
	if err != nil {
		return err
	}
	join, err := st.AddNode(ctx, n.ID, n.PublicKey(), cur.Host)
	if err != nil {
		return fmt.Errorf("consensus membership of the bootstrap node: %w", err)
	}
	cfg := c.opts.Configuration
	if cfg == nil {
		cfg = curator.DefaultClusterConfiguration()
	}
	usage, err := curator.NodeTPMUsage(cfg, n.HaveTPM)
	if err != nil {
		return err
	}
	security, err := curator.NodeStorageSecurity(cfg)
	if err != nil {
		return err
	}
	n.setStorage(security)
	creds, err := curator.BootstrapNodeFinish(ctx, st.CuratorClient(), &curator.Bootstrap{
		NodePublicKey:    n.PublicKey(),
		JoinKey:          n.JoinKey.Public().(ed25519.PublicKey),
		ClusterUnlockKey: n.ClusterUnlockKey,
		StorageSecurity:  security,
		TPMUsage:         usage,
		Labels:           c.opts.BootstrapLabels,
		Consensus:        join,
		OwnerPublicKey:   c.OwnerKey.Public().(ed25519.PublicKey),
		Configuration:    cfg,
	})
	if err != nil {
		return err
	}
	if n.credentials, err = identity.NewNodeCredentials(n.Key, creds.NodeCertificate, creds.CACertificate); err != nil {
		return err
	}
	c.CA = n.credentials.ClusterCA()
	c.mu.Lock()
	c.Curators = append(c.Curators, cur)
	c.mu.Unlock()
	cur.StartCurator()

	// Like a node's status push, without which nobody finds the leader.
	// Until it is done, only a direct connection reaches the leader.
	conn, err := DialDirect(cur.Host, n.Credentials())
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := retryUnavailable(ctx, func() error { return n.updateStatus(ctx, conn, n.Host) }); err != nil {
		return fmt.Errorf("reporting status of the bootstrap node: %w", err)
	}
	return c.escrowOwner(ctx)
}

func (c *Cluster) escrowOwner(ctx context.Context) error {
	creds, err := rpc.NewEphemeralCredentials(c.OwnerKey, rpc.WantRemoteCluster(c.CA))
	if err != nil {
		return err
	}
	conn, err := c.Dial(creds)
	if err != nil {
		return err
	}
	defer conn.Close()
	return retryUnavailable(ctx, func() error {
		cert, err := rpc.RetrieveOwnerCertificate(ctx, apb.NewAAAClient(conn), c.OwnerKey)
		if err != nil {
			return err
		}
		c.Owner = *cert
		return nil
	})
}

// addCurator adds curator i the way the cluster grows its control plane.
func (c *Cluster) addCurator(ctx context.Context, t testing.TB, i int) error {
	host := c.curatorHost(i)
	n, err := c.AddNode(ctx, NodeOptions{Host: host})
	if err != nil {
		return err
	}
	mgmt := apb.NewManagementClient(c.OwnerConn())
	yes := true
	if err := retryUnavailable(ctx, func() error {
		_, err := mgmt.UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: &apb.UpdateNodeRolesRequest_Id{Id: n.ID}, ConsensusMember: &yes})
		return err
	}); err != nil {
		return fmt.Errorf("adding ConsensusMember role: %w", err)
	}
	role, err := n.waitConsensusRole(ctx)
	if err != nil {
		return err
	}
	join, err := curator.ConsensusJoinCluster(role)
	if err != nil {
		return err
	}
	cur, err := c.newCurator(t, i, n, join)
	if err != nil {
		return err
	}
	if _, err := cur.consensusStatus(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	c.Curators = append(c.Curators, cur)
	c.mu.Unlock()
	cur.StartCurator()
	return nil
}

// newCurator starts the etcd member of curator i, on node n. It
// bootstraps a new cluster if join is nil.
func (c *Cluster) newCurator(t testing.TB, i int, n *Node, join *consensus.JoinCluster) (*Curator, error) {
	host := c.curatorHost(i)
	cur := &Curator{Host: host, Node: n, cluster: c, logs: logtree.New()}
	// Unix socket paths are limited to about 100 bytes, which test
	// directories may exceed.
	ephemeral, err := os.MkdirTemp("", "curatortest-")
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { os.RemoveAll(ephemeral) })
	cur.Consensus = consensus.New(consensus.Config{
		NodeID:         n.ID,
		NodePrivateKey: n.Key,
		DataDir:        filepath.Join(t.TempDir(), "consensus"),
		EphemeralDir:   ephemeral,
		ListenHost:     host,
		Port:           node.ConsensusPort,
		JoinCluster:    join,
	})
	consensusLogs := logtree.New()
	c.showLogs(t, fmt.Sprintf("consensus %d", i), consensusLogs)
	c.showLogs(t, fmt.Sprintf("curator %d", i), cur.logs)
	ctx, stopConsensus := context.WithCancel(c.ctx)
	sup := supervisor.New(ctx, cur.Consensus.Run, supervisor.WithExistingLogtree(consensusLogs), supervisor.WithBackoff(100*time.Millisecond, 2*time.Second))
	t.Cleanup(func() {
		// Curators stop before the etcd member they use.
		cur.StopCurator()
		stopConsensus()
		<-sup.Done()
	})
	return cur, nil
}

// showLogs prints the logs of lt either live (Verbose) or, if the test
// failed, at its end.
func (c *Cluster) showLogs(t testing.TB, name string, lt *logtree.LogTree) {
	if c.opts.Verbose {
		reader, err := lt.Read("", logtree.WithChildren(), logtree.WithStream())
		if err != nil {
			t.Fatalf("reading logs: %v", err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for e := range reader.Stream {
				t.Logf("%s: %s", name, e.String())
			}
		}()
		t.Cleanup(func() {
			reader.Close()
			<-done
		})
		return
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		reader, err := lt.Read("", logtree.WithChildren(), logtree.WithBacklog(logtree.BacklogAllAvailable))
		if err != nil {
			return
		}
		defer reader.Close()
		for _, e := range reader.Backlog {
			t.Logf("%s: %s", name, e.String())
		}
	})
}

// consensusStatus waits until the curator's etcd member runs.
func (cur *Curator) consensusStatus(ctx context.Context) (*consensus.Status, error) {
	w := cur.Consensus.Value().Watch()
	defer w.Close()
	st, err := w.Get(ctx, consensus.FilterRunning)
	if err != nil {
		return nil, fmt.Errorf("waiting for consensus of %s: %w", cur.Host, err)
	}
	return st, nil
}

// StartCurator starts the curator runnable, if it is not running.
func (cur *Curator) StartCurator() {
	cur.mu.Lock()
	defer cur.mu.Unlock()
	if cur.stopTree != nil {
		return
	}
	ctx, cancel := context.WithCancel(cur.cluster.ctx)
	svc := curator.New(curator.Config{
		NodeCredentials: cur.Node.credentials,
		Consensus:       cur.Consensus.Value(),
		LeaderTTL:       cur.cluster.opts.LeaderTTL,
		ListenHost:      cur.Host,
	})
	cur.generation++
	root := func(ctx context.Context) error {
		if err := supervisor.Run(ctx, fmt.Sprintf("curator%d", cur.generation), svc.Run); err != nil {
			return err
		}
		supervisor.Signal(ctx, supervisor.SignalHealthy)
		<-ctx.Done()
		return ctx.Err()
	}
	sup := supervisor.New(ctx, root, supervisor.WithExistingLogtree(cur.logs), supervisor.WithBackoff(100*time.Millisecond, 2*time.Second))
	cur.stopTree, cur.treeDone = cancel, sup.Done()
}

func (c *Cluster) stopCurators() {
	var wg sync.WaitGroup
	for _, cur := range c.Curators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cur.StopCurator()
		}()
	}
	wg.Wait()
}

// StopCurator stops the curator runnable and waits until it has stopped.
// The etcd member keeps running.
func (cur *Curator) StopCurator() {
	cur.mu.Lock()
	defer cur.mu.Unlock()
	if cur.stopTree == nil {
		return
	}
	cur.stopTree()
	<-cur.treeDone
	cur.stopTree, cur.treeDone = nil, nil
}

// Leader returns the curator currently serving as leader, as the curators
// themselves report it.
func (c *Cluster) Leader(ctx context.Context) (*Curator, error) {
	for _, cur := range c.Curators {
		res, err := cur.CurrentLeader(ctx)
		if err != nil {
			continue
		}
		if res.LeaderNodeId == res.ThisNodeId {
			return cur, nil
		}
	}
	return nil, errors.New("no curator reports itself as leader")
}

// CurrentLeader asks the curator where the leader is.
func (cur *Curator) CurrentLeader(ctx context.Context) (*ipb.GetCurrentLeaderResponse, error) {
	conn, err := DialDirect(cur.Host, cur.cluster.OwnerCredentials())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stream, err := ipb.NewCuratorLocalClient(conn).GetCurrentLeader(ctx, &ipb.GetCurrentLeaderRequest{})
	if err != nil {
		return nil, err
	}
	return stream.Recv()
}

// OwnerCredentials are the owner's client credentials.
func (c *Cluster) OwnerCredentials() credentials.TransportCredentials {
	return rpc.NewAuthenticatedCredentials(c.Owner, rpc.WantRemoteCluster(c.CA))
}

// UserCredentials returns credentials of a user called identityName, with a
// certificate issued directly in etcd. Users other than the owner hold no
// permissions.
func (c *Cluster) UserCredentials(ctx context.Context, identityName string) (credentials.TransportCredentials, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	st, err := c.Curators[0].consensusStatus(ctx)
	if err != nil {
		return nil, err
	}
	der, err := curator.IssueUserCertificate(ctx, st.CuratorClient(), identityName, pub)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	return rpc.NewAuthenticatedCredentials(cert, rpc.WantRemoteCluster(c.CA)), nil
}

// Dial connects to the curator leader through metropolis:///control, seeded
// with the addresses of all the cluster's curators (including those still
// being added), so that the connection follows the leader
// wherever it moves. Calls wait for a leader to be found (gRPC's
// WaitForReady) rather than failing while there is none, as during a leader
// change; bound them with a context deadline.
func (c *Cluster) Dial(creds credentials.TransportCredentials) (*grpc.ClientConn, error) {
	r := resolver.New(c.ctx)
	for i := range c.opts.Curators {
		r.AddEndpoint(resolver.NodeByHostPort(c.curatorHost(i), node.CuratorServicePort))
	}
	// The resolver stops following curators for a connection when the
	// connection closes; what remains of it goes with the cluster.
	return grpc.NewClient(resolver.Scheme+":///control",
		grpc.WithTransportCredentials(creds),
		grpc.WithResolvers(r),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)),
	)
}

// DialDirect connects to the curator at host, without following the
// leader.
func DialDirect(host string, creds credentials.TransportCredentials) (*grpc.ClientConn, error) {
	return grpc.NewClient(fmt.Sprintf("%s:%d", host, node.CuratorServicePort), grpc.WithTransportCredentials(creds))
}

// retryUnavailable calls f until it returns something other than
// Unavailable, which is what curators answer while no leader is elected.
func retryUnavailable(ctx context.Context, f func() error) error {
	for {
		err := f()
		if status.Code(err) != codes.Unavailable {
			return err
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		}
	}
}

// State returns every key of the curator's etcd namespace with its value,
// except the leader election keys, so that tests can check that an
// operation changed nothing.
func (c *Cluster) State(ctx context.Context) (map[string]string, error) {
	st, err := c.Curators[0].consensusStatus(ctx)
	if err != nil {
		return nil, err
	}
	res, err := st.CuratorClient().Get(ctx, "", clientv3.WithFromKey())
	if err != nil {
		return nil, err
	}
	state := make(map[string]string, len(res.Kvs))
	for _, kv := range res.Kvs {
		if !strings.HasPrefix(string(kv.Key), "/leader/") {
			state[string(kv.Key)] = string(kv.Value)
		}
	}
	return state, nil
}

// Etcd returns a client of the curator's etcd namespace, through the
// consensus member of curator i.
func (c *Cluster) Etcd(ctx context.Context, i int) (*clientv3.Client, error) {
	st, err := c.Curators[i].consensusStatus(ctx)
	if err != nil {
		return nil, err
	}
	return st.CuratorClient(), nil
}
