package benchcurator

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/metropolis/node/core/rpc"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
)

// callTimeout bounds every unary call of a simulated node.
const callTimeout = 2 * time.Minute

// benchmarkNetwork is where simulated nodes' addresses come from:
// 198.18.0.0/15, reserved for benchmarks (RFC 2544). Nothing is ever sent
// to them; the curator only stores them.
var benchmarkNetwork = netip.MustParseAddr("198.18.0.0")

// nodeAddress returns the i-th address of benchmarkNetwork.
func nodeAddress(i int) string {
	a := benchmarkNetwork.As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(i)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
}

// simNode is one simulated node: its own keys, and once committed, its own
// certificate and connection to the leader.
type simNode struct {
	index   int
	id      string
	key     ed25519.PrivateKey
	joinKey ed25519.PrivateKey
	address string

	creds *identity.NodeCredentials
	conn  *grpc.ClientConn

	// backlog is how many nodes the initial state of its watch had.
	backlog int

	// mu guards what the node's heartbeat and watch goroutines record.
	mu         sync.Mutex
	heartbeats []heartbeatSample
	// streamErr is why its heartbeat or watch stream broke, if one did.
	streamErr error
}

// heartbeatSample is one heartbeat: when it was sent and how long the
// answer took.
type heartbeatSample struct {
	sent time.Time
	rtt  time.Duration
}

func newSimNode(index int) (*simNode, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	_, joinKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &simNode{index: index, id: identity.NodeID(pub), key: key, joinKey: joinKey, address: nodeAddress(index)}, nil
}

// register takes the node through registration as a node does (register
// with its bare key, approval by the owner, commit), which gives it its
// certificate.
func (n *simNode) register(ctx context.Context, cp *controlPlane) error {
	creds, err := rpc.NewEphemeralCredentials(n.key, rpc.WantRemoteCluster(cp.ca))
	if err != nil {
		return err
	}
	conn, err := cp.dialNode(creds)
	if err != nil {
		return err
	}
	defer conn.Close()
	cur := ipb.NewCuratorClient(conn)

	var reg *ipb.RegisterNodeResponse
	if err := retryUnavailable(ctx, func(ctx context.Context) (err error) {
		reg, err = cur.RegisterNode(ctx, &ipb.RegisterNodeRequest{
			RegisterTicket: cp.handoff.RegisterTicket,
			JoinKey:        n.joinKey.Public().(ed25519.PublicKey),
			HaveLocalTpm:   true,
		})
		return err
	}); err != nil {
		return fmt.Errorf("registering: %w", err)
	}
	mgmt := apb.NewManagementClient(cp.ownerConn)
	if err := retryUnavailable(ctx, func(ctx context.Context) error {
		_, err := mgmt.ApproveNode(ctx, &apb.ApproveNodeRequest{Pubkey: n.key.Public().(ed25519.PublicKey)})
		return err
	}); err != nil {
		return fmt.Errorf("approving: %w", err)
	}
	security := reg.RecommendedNodeStorageSecurity
	var unlockKey []byte
	if security != cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE {
		unlockKey = make([]byte, 32)
		rand.Read(unlockKey)
	}
	var commit *ipb.CommitNodeResponse
	if err := retryUnavailable(ctx, func(ctx context.Context) (err error) {
		commit, err = cur.CommitNode(ctx, &ipb.CommitNodeRequest{ClusterUnlockKey: unlockKey, StorageSecurity: security})
		return err
	}); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	n.creds, err = identity.NewNodeCredentials(n.key, commit.NodeCertificate, commit.CaCertificate)
	if err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

// connect opens the node's own connection to the leader, authenticated
// with its certificate, and reports its status.
func (n *simNode) connect(ctx context.Context, cp *controlPlane) error {
	conn, err := cp.dialNode(rpc.NewAuthenticatedCredentials(n.creds.TLSCredentials(), rpc.WantRemoteCluster(cp.ca)))
	if err != nil {
		return err
	}
	n.conn = conn
	return n.updateStatus(ctx, n.address)
}

// updateStatus reports address as the node's external address.
func (n *simNode) updateStatus(ctx context.Context, address string) error {
	err := retryUnavailable(ctx, func(ctx context.Context) error {
		_, err := ipb.NewCuratorClient(n.conn).UpdateNodeStatus(ctx, &ipb.UpdateNodeStatusRequest{
			NodeId: n.id,
			Status: &cpb.NodeStatus{ExternalAddress: address},
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("updating status: %w", err)
	}
	return nil
}

// watch opens the node's watch of all nodes and waits for its initial
// state. Then, until ctx is done, it hands every event to seen.
func (n *simNode) watch(ctx context.Context, seen func(watcher int, ev *ipb.WatchEvent, at time.Time), wg *sync.WaitGroup) error {
	stream, err := ipb.NewCuratorClient(n.conn).Watch(ctx, &ipb.WatchRequest{
		Kind: &ipb.WatchRequest_NodesInCluster_{NodesInCluster: &ipb.WatchRequest_NodesInCluster{}},
	})
	if err != nil {
		return fmt.Errorf("watching: %w", err)
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("watching, in the initial state: %w", err)
		}
		n.backlog += len(ev.Nodes)
		if ev.Progress == ipb.WatchEvent_PROGRESS_LAST_BACKLOGGED {
			break
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			ev, err := stream.Recv()
			if err != nil {
				n.streamFailed(ctx, fmt.Errorf("watch: %w", err))
				return
			}
			seen(n.index, ev, time.Now())
		}
	}()
	return nil
}

// heartbeat sends a heartbeat every interval, the first after offset, and
// records each round trip, until ctx is done.
func (n *simNode) heartbeat(ctx context.Context, offset, interval time.Duration, answered *atomic.Int64) {
	stream, err := ipb.NewCuratorClient(n.conn).Heartbeat(ctx)
	if err != nil {
		n.streamFailed(ctx, fmt.Errorf("heartbeat: %w", err))
		return
	}
	timer := time.NewTimer(offset)
	defer timer.Stop()
	first := true
	for {
		select {
		case <-timer.C:
		case <-ctx.Done():
			return
		}
		timer.Reset(interval)
		sent := time.Now()
		if err := stream.Send(&ipb.HeartbeatUpdateRequest{}); err != nil {
			n.streamFailed(ctx, fmt.Errorf("heartbeat: sending: %w", err))
			return
		}
		if _, err := stream.Recv(); err != nil {
			n.streamFailed(ctx, fmt.Errorf("heartbeat: receiving: %w", err))
			return
		}
		rtt := time.Since(sent)
		n.mu.Lock()
		n.heartbeats = append(n.heartbeats, heartbeatSample{sent: sent, rtt: rtt})
		n.mu.Unlock()
		if first {
			answered.Add(1)
			first = false
		}
	}
}

// streamFailed records why a stream broke, unless it was because the
// benchmark is ending.
func (n *simNode) streamFailed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.streamErr == nil {
		n.streamErr = err
	}
}

// retryUnavailable calls f, each time with callTimeout, until it returns
// something other than Unavailable, which curators answer while no leader
// is elected, or ctx is done.
func retryUnavailable(ctx context.Context, f func(context.Context) error) error {
	for {
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		err := f(callCtx)
		cancel()
		if status.Code(err) != codes.Unavailable {
			return err
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		}
	}
}
