// Package ha is the end-to-end suite of a highly available control plane: a
// cluster of three nodes, all of them consensus members, whose storage is
// encrypted and whose nodes seal their secrets with their TPMs. Every node,
// the bootstrap node included, is restarted in turn, and the cluster must
// keep serving throughout: a restarted node unseals its configuration,
// fetches the cluster's half of its data key from the curator of another
// node and rejoins, and while a node is down the other two elect a curator
// leader among themselves and go on answering.
//
// Only one node is ever down at a time: with encrypted storage a node can
// only come back while another consensus member's curator is up (see the
// hacold suite for a cold start of the whole cluster).
package ha

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"metropolis.dev/metropolis/cli/metroctl/core"
	"metropolis.dev/metropolis/node"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/rpc"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/metropolis/test/e2e/e2etest"
	"metropolis.dev/metropolis/test/launch"
	"metropolis.dev/osbase/test/qemu"
)

// Base timeouts under TCG on 2 cores (see qemu.Timeout).
const (
	// suiteTimeout bounds the whole suite, launch included.
	suiteTimeout = 30 * time.Minute
	// stepTimeout bounds one step of a test: a node coming back, the
	// curators electing a new leader.
	stepTimeout = 8 * time.Minute
	// callTimeout bounds one call to the cluster, so that a call to a
	// curator that went away does not use up a whole step.
	callTimeout = 30 * time.Second
)

// withCallTimeout runs f with a context bounded by callTimeout.
func withCallTimeout[T any](ctx context.Context, f func(ctx context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, qemu.Timeout(callTimeout))
	defer cancel()
	return f(ctx)
}

// listNodes lists the cluster's nodes through a new connection to the
// curator leader, wherever it runs now.
func listNodes(ctx context.Context, c *e2etest.Cluster) ([]*apb.Node, error) {
	conn, err := c.CuratorClient()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return withCallTimeout(ctx, func(ctx context.Context) ([]*apb.Node, error) {
		return core.GetNodes(ctx, apb.NewManagementClient(conn), "")
	})
}

// healthy returns an error naming every node with one of ids that is not
// listed in nodes as UP and HEALTHY.
func healthy(nodes []*apb.Node, ids ...string) error {
	byID := make(map[string]*apb.Node)
	for _, n := range nodes {
		byID[n.Id] = n
	}
	var problems []string
	for _, id := range ids {
		n, ok := byID[id]
		switch {
		case !ok:
			problems = append(problems, id+" is not listed")
		case n.State != cpb.NodeState_NODE_STATE_UP || n.Health != apb.Node_HEALTH_HEALTHY:
			problems = append(problems, fmt.Sprintf("%s is %s, %s", id, n.State, n.Health))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// leaderSeenBy asks the curator of node i itself, not whichever curator
// leads, which node's curator leads.
func leaderSeenBy(ctx context.Context, c *e2etest.Cluster, i int) (string, error) {
	id := c.NodeIDs[i]
	creds := rpc.NewAuthenticatedCredentials(c.Owner, rpc.WantRemoteCluster(c.CA), rpc.WantRemoteNode(id))
	conn, err := grpc.NewClient("passthrough:///"+net.JoinHostPort(c.NodeAddress(i).String(), strconv.Itoa(node.CuratorServicePort)),
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, address string) (net.Conn, error) {
			return c.Switch.DialContext(ctx, "tcp", address)
		}),
	)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	res, err := withCallTimeout(ctx, func(ctx context.Context) (*ipb.GetCurrentLeaderResponse, error) {
		stream, err := ipb.NewCuratorLocalClient(conn).GetCurrentLeader(ctx, &ipb.GetCurrentLeaderRequest{})
		if err != nil {
			return nil, err
		}
		return stream.Recv()
	})
	if err != nil {
		return "", fmt.Errorf("asking node %d (%s) for the leader: %w", i, id, err)
	}
	return res.LeaderNodeId, nil
}

// serving returns nil if the cluster serves with the nodes running (by
// index): the curator of every running node names the same leader, which is
// one of them, and the leader lists every running node as UP and HEALTHY.
// Every node of this suite is a consensus member, so every running node runs
// a curator.
func serving(ctx context.Context, c *e2etest.Cluster, running ...int) error {
	var leader string
	for _, i := range running {
		l, err := leaderSeenBy(ctx, c, i)
		if err != nil {
			return err
		}
		if leader != "" && l != leader {
			return fmt.Errorf("the curators disagree about the leader: %s and %s", leader, l)
		}
		leader = l
	}
	var runningIDs []string
	for _, i := range running {
		runningIDs = append(runningIDs, c.NodeIDs[i])
	}
	if !slices.Contains(runningIDs, leader) {
		return fmt.Errorf("the leader is %q, which is not one of the running nodes %v", leader, runningIDs)
	}
	nodes, err := listNodes(ctx, c)
	if err != nil {
		return err
	}
	return healthy(nodes, runningIDs...)
}

// others returns the indices of the cluster's nodes but i.
func others(c *e2etest.Cluster, i int) []int {
	var is []int
	for j := range c.NodeIDs {
		if j != i {
			is = append(is, j)
		}
	}
	return is
}

func TestHA(t *testing.T) {
	e2etest.Skip(t)
	ctx := e2etest.Context(t, suiteTimeout)
	c := e2etest.Launch(t, ctx, launch.ClusterOptions{
		NumNodes:        3,
		TPMMode:         "required",
		StorageSecurity: "needs-encryption",
	})
	ids := c.NodeIDs
	all := []int{0, 1, 2}

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"GrowConsensus", func(t *testing.T) {
			c.GrowConsensus(t, ctx, stepTimeout)
		}},
		{"AllNodesHealthy", func(t *testing.T) {
			if err := c.WaitHealthy(ctx); err != nil {
				t.Fatal(err)
			}
			e2etest.Poll(t, ctx, "the cluster serves on every node", stepTimeout, func(ctx context.Context) error {
				return serving(ctx, c, all...)
			})
		}},
		{"RollingReboot", func(t *testing.T) {
			for i := range ids {
				ok := t.Run(fmt.Sprintf("Node%d", i), func(t *testing.T) {
					if err := c.RebootNode(ctx, i); err != nil {
						t.Fatal(err)
					}
					e2etest.Poll(t, ctx, fmt.Sprintf("the cluster serves on every node after node %d rebooted", i), stepTimeout, func(ctx context.Context) error {
						return serving(ctx, c, all...)
					})
				})
				if !ok {
					return
				}
			}
		}},
		{"BootstrapNodeDown", func(t *testing.T) {
			// Node 0 bootstrapped the cluster and was its first curator
			// leader; nothing may depend on it since.
			if err := c.ShutdownNode(ctx, 0); err != nil {
				t.Fatal(err)
			}
			e2etest.Poll(t, ctx, "nodes 1 and 2 serve while node 0 is down", stepTimeout, func(ctx context.Context) error {
				return serving(ctx, c, others(c, 0)...)
			})
			restarted := time.Now()
			if err := c.StartNode(ctx, 0); err != nil {
				t.Fatal(err)
			}
			e2etest.Poll(t, ctx, "node 0 heartbeats after its restart and the cluster serves on every node", stepTimeout, func(ctx context.Context) error {
				nodes, err := listNodes(ctx, c)
				if err != nil {
					return err
				}
				i := slices.IndexFunc(nodes, func(n *apb.Node) bool { return n.Id == ids[0] })
				if i < 0 {
					return fmt.Errorf("node 0 (%s) is not listed", ids[0])
				}
				if tsh := nodes[i].TimeSinceHeartbeat; tsh == nil || !time.Now().Add(-tsh.AsDuration()).After(restarted) {
					return errors.New("node 0 has sent no heartbeat since its restart")
				}
				return serving(ctx, c, all...)
			})
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			return
		}
	}
}
