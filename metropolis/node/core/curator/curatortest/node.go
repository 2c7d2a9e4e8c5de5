package curatortest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/metropolis/node/core/rpc"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
)

// NodeOptions configure a simulated node.
type NodeOptions struct {
	// Host is the external address the node reports. Empty picks a unique
	// address in 10.0.0.0/8, which nothing listens on.
	Host string
	// NoTPM makes the node register without a TPM.
	NoTPM bool
	// Labels the node registers with.
	Labels *cpb.NodeLabels
}

// Node is a node's identity as it goes through registration: its keys, and
// once committed, its credentials. It runs nothing; tests call the curator
// in its name.
type Node struct {
	// ID is the node ID.
	ID string
	// Key is the node's private key.
	Key ed25519.PrivateKey
	// JoinKey is the private key the node rejoins with.
	JoinKey ed25519.PrivateKey
	// Host is the external address the node reports.
	Host string
	// HaveTPM says whether the node registers with a TPM.
	HaveTPM bool
	// Labels the node registers with.
	Labels *cpb.NodeLabels
	// StorageSecurity the node commits with, as recommended at
	// registration.
	StorageSecurity cpb.NodeStorageSecurity
	// ClusterUnlockKey the node commits with.
	ClusterUnlockKey []byte

	cluster     *Cluster
	mu          sync.Mutex
	credentials *identity.NodeCredentials
	conn        *grpc.ClientConn
}

// NewNode creates a node's keys. Nothing is sent to the cluster.
func (c *Cluster) NewNode(opts NodeOptions) (*Node, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	_, joinKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	host := opts.Host
	if host == "" {
		c.mu.Lock()
		c.simulated++
		n := c.simulated
		c.mu.Unlock()
		host = fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255)
	}
	return &Node{
		ID:      identity.NodeID(pub),
		Key:     key,
		JoinKey: joinKey,
		Host:    host,
		HaveTPM: !opts.NoTPM,
		Labels:  opts.Labels,
		cluster: c,
	}, nil
}

// PublicKey is the node's public key.
func (n *Node) PublicKey() ed25519.PublicKey {
	return n.Key.Public().(ed25519.PublicKey)
}

// setStorage picks the node's cluster unlock key for the storage security
// it sets up.
func (n *Node) setStorage(security cpb.NodeStorageSecurity) {
	n.StorageSecurity = security
	n.ClusterUnlockKey = nil
	if security != cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE {
		n.ClusterUnlockKey = make([]byte, 32)
		rand.Read(n.ClusterUnlockKey)
	}
}

// EphemeralCredentials authenticate as the bare node key, as a node does
// while registering.
func (n *Node) EphemeralCredentials() credentials.TransportCredentials {
	return n.cluster.ephemeral(n.Key)
}

// JoinCredentials authenticate as the bare join key, as a node does when
// rejoining.
func (n *Node) JoinCredentials() credentials.TransportCredentials {
	return n.cluster.ephemeral(n.JoinKey)
}

func (c *Cluster) ephemeral(key ed25519.PrivateKey) credentials.TransportCredentials {
	creds, err := rpc.NewEphemeralCredentials(key, rpc.WantRemoteCluster(c.CA))
	if err != nil {
		// Only invalid keys or options fail, and both are fixed here.
		panic(err)
	}
	return creds
}

// Credentials authenticate with the node certificate. The node must have
// committed.
func (n *Node) Credentials() credentials.TransportCredentials {
	return rpc.NewAuthenticatedCredentials(n.NodeCredentials().TLSCredentials(), rpc.WantRemoteCluster(n.cluster.CA))
}

// NodeCredentials are the node's credentials, nil before it committed.
func (n *Node) NodeCredentials() *identity.NodeCredentials {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.credentials
}

// Conn is a connection to the leader authenticated as the node, made on
// first use and closed when the test ends.
func (n *Node) Conn() (*grpc.ClientConn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn != nil {
		return n.conn, nil
	}
	if n.credentials == nil {
		return nil, fmt.Errorf("node %s has not committed yet", n.ID)
	}
	conn, err := n.cluster.Dial(rpc.NewAuthenticatedCredentials(n.credentials.TLSCredentials(), rpc.WantRemoteCluster(n.cluster.CA)))
	if err != nil {
		return nil, err
	}
	n.cluster.track(conn)
	n.conn = conn
	return conn, nil
}

// RegisterTicket returns the cluster's register ticket.
func (c *Cluster) RegisterTicket(ctx context.Context) ([]byte, error) {
	var res *apb.GetRegisterTicketResponse
	err := retryUnavailable(ctx, func() (err error) {
		res, err = apb.NewManagementClient(c.OwnerConn()).GetRegisterTicket(ctx, &apb.GetRegisterTicketRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	return res.Ticket, nil
}

// Register registers the node, which becomes NEW, and sets up its storage
// as the cluster recommends.
func (n *Node) Register(ctx context.Context) (*ipb.RegisterNodeResponse, error) {
	ticket, err := n.cluster.RegisterTicket(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := n.cluster.Dial(n.EphemeralCredentials())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var res *ipb.RegisterNodeResponse
	err = retryUnavailable(ctx, func() (err error) {
		res, err = ipb.NewCuratorClient(conn).RegisterNode(ctx, &ipb.RegisterNodeRequest{
			RegisterTicket: ticket,
			JoinKey:        n.JoinKey.Public().(ed25519.PublicKey),
			HaveLocalTpm:   n.HaveTPM,
			Labels:         n.Labels,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("registering %s: %w", n.ID, err)
	}
	n.setStorage(res.RecommendedNodeStorageSecurity)
	return res, nil
}

// Approve approves the node as the owner.
func (c *Cluster) Approve(ctx context.Context, n *Node) error {
	return retryUnavailable(ctx, func() error {
		_, err := apb.NewManagementClient(c.OwnerConn()).ApproveNode(ctx, &apb.ApproveNodeRequest{Pubkey: n.PublicKey()})
		return err
	})
}

// Commit commits the node, which becomes UP and gets its credentials.
func (n *Node) Commit(ctx context.Context) error {
	conn, err := n.cluster.Dial(n.EphemeralCredentials())
	if err != nil {
		return err
	}
	defer conn.Close()
	var res *ipb.CommitNodeResponse
	err = retryUnavailable(ctx, func() (err error) {
		res, err = ipb.NewCuratorClient(conn).CommitNode(ctx, &ipb.CommitNodeRequest{
			ClusterUnlockKey: n.ClusterUnlockKey,
			StorageSecurity:  n.StorageSecurity,
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("committing %s: %w", n.ID, err)
	}
	creds, err := identity.NewNodeCredentials(n.Key, res.NodeCertificate, res.CaCertificate)
	if err != nil {
		return fmt.Errorf("committing %s: %w", n.ID, err)
	}
	n.mu.Lock()
	n.credentials = creds
	n.mu.Unlock()
	return nil
}

// UpdateStatus reports address as the node's external address.
func (n *Node) UpdateStatus(ctx context.Context, address string) error {
	conn, err := n.Conn()
	if err != nil {
		return err
	}
	return retryUnavailable(ctx, func() error { return n.updateStatus(ctx, conn, address) })
}

func (n *Node) updateStatus(ctx context.Context, conn *grpc.ClientConn, address string) error {
	_, err := ipb.NewCuratorClient(conn).UpdateNodeStatus(ctx, &ipb.UpdateNodeStatusRequest{
		NodeId: n.ID,
		Status: &cpb.NodeStatus{ExternalAddress: address},
	})
	return err
}

// AddNode creates a node and takes it through registration, approval and
// commit, then reports its status: the node is UP with an address, like a
// node that just joined.
func (c *Cluster) AddNode(ctx context.Context, opts NodeOptions) (*Node, error) {
	n, err := c.NewNode(opts)
	if err != nil {
		return nil, err
	}
	if _, err := n.Register(ctx); err != nil {
		return nil, err
	}
	if err := c.Approve(ctx, n); err != nil {
		return nil, fmt.Errorf("approving %s: %w", n.ID, err)
	}
	if err := n.Commit(ctx); err != nil {
		return nil, err
	}
	if err := n.UpdateStatus(ctx, n.Host); err != nil {
		return nil, fmt.Errorf("reporting status of %s: %w", n.ID, err)
	}
	return n, nil
}

// waitConsensusRole waits until the node has the ConsensusMember role and
// returns it.
func (n *Node) waitConsensusRole(ctx context.Context) (*cpb.NodeRoles_ConsensusMember, error) {
	conn, err := n.Conn()
	if err != nil {
		return nil, err
	}
	var role *cpb.NodeRoles_ConsensusMember
	err = retryUnavailable(ctx, func() error {
		stream, err := ipb.NewCuratorClient(conn).Watch(ctx, &ipb.WatchRequest{
			Kind: &ipb.WatchRequest_NodeInCluster_{NodeInCluster: &ipb.WatchRequest_NodeInCluster{NodeId: n.ID}},
		})
		if err != nil {
			return err
		}
		for {
			ev, err := stream.Recv()
			if err != nil {
				return err
			}
			for _, node := range ev.Nodes {
				if role = node.Roles.GetConsensusMember(); role != nil {
					return nil
				}
			}
		}
	})
	return role, err
}

// OwnerConn is a connection to the leader authenticated as the owner,
// shared by everything in the test.
func (c *Cluster) OwnerConn() *grpc.ClientConn {
	c.mu.Lock()
	owner := c.owner
	c.mu.Unlock()
	if owner != nil {
		return owner
	}
	conn, err := c.Dial(c.OwnerCredentials())
	if err != nil {
		// grpc.NewClient only fails for invalid targets or options, which
		// are fixed here.
		panic(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.owner != nil {
		conn.Close()
		return c.owner
	}
	c.owner = conn
	c.conns = append(c.conns, conn)
	return conn
}

func (c *Cluster) track(conn *grpc.ClientConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conns = append(c.conns, conn)
}

func (c *Cluster) closeConns() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}
