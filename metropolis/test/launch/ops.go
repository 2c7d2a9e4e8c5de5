package launch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"metropolis.dev/metropolis/cli/metroctl/core"
	"metropolis.dev/metropolis/node"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/rpc"
	"metropolis.dev/metropolis/node/core/rpc/resolver"
	apb "metropolis.dev/metropolis/proto/api"
	"metropolis.dev/osbase/test/qemu"
)

// machine returns node i's machine.
func (c *Cluster) machine(i int) (*machine, error) {
	if i < 0 || i >= len(c.machines) {
		return nil, fmt.Errorf("no node %d: the cluster has nodes 0 to %d", i, len(c.machines)-1)
	}
	return c.machines[i], nil
}

// ShutdownNode powers node i off, as pulling its plug does, and returns
// once its VM has ended. Shutting down a node that is off does nothing.
func (c *Cluster) ShutdownNode(ctx context.Context, i int) error {
	m, err := c.machine(i)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.stop()
}

// StartNode starts node i's VM again after ShutdownNode, as the same
// machine (disk, TPM, firmware variables, address), and returns without
// waiting for the node to come up (see WaitHealthy).
func (c *Cluster) StartNode(ctx context.Context, i int) error {
	m, err := c.machine(i)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.start(c.ctx, c.opts.Node)
}

// RebootNode powers node i off, starts it again and waits until it sent
// the curator a heartbeat after the restart and is HEALTHY.
func (c *Cluster) RebootNode(ctx context.Context, i int) error {
	m, err := c.machine(i)
	if err != nil {
		return err
	}
	id := c.NodeIDs[i]
	s := c.beginStep("Rebooting node %d (%s)", i, id)
	if err := c.ShutdownNode(ctx, i); err != nil {
		return err
	}
	if err := c.StartNode(ctx, i); err != nil {
		return err
	}
	restarted := m.startedAt()
	err = c.poll(ctx, fmt.Sprintf("node %d heartbeats after its restart and is HEALTHY", i), rebootTimeout, []*machine{m}, func(ctx context.Context) error {
		n, err := core.GetNode(ctx, c.ManagementClient(), id)
		if err != nil {
			return err
		}
		if n.TimeSinceHeartbeat == nil {
			return errors.New("no heartbeat yet")
		}
		if last := time.Now().Add(-n.TimeSinceHeartbeat.AsDuration()); !last.After(restarted) {
			return fmt.Errorf("last heartbeat %s before the restart", restarted.Sub(last).Round(time.Second))
		}
		return c.healthProblems([]*apb.Node{n}, []string{id})
	})
	if err != nil {
		return err
	}
	s.done()
	return nil
}

// AllNodesHealthy returns nil if every node of the cluster launched is UP
// and HEALTHY, and otherwise an error naming those that are not.
func (c *Cluster) AllNodesHealthy(ctx context.Context) error {
	nodes, err := core.GetNodes(ctx, c.ManagementClient(), "")
	if err != nil {
		return err
	}
	return c.healthProblems(nodes, c.NodeIDs)
}

// WaitHealthy waits until the nodes with the given IDs, or every node if
// none are given, are UP and HEALTHY.
func (c *Cluster) WaitHealthy(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		ids = c.NodeIDs
	}
	var watch []*machine
	for _, id := range ids {
		if i := c.indexOf(id); i >= 0 {
			watch = append(watch, c.machines[i])
		}
	}
	return c.poll(ctx, fmt.Sprintf("%d node(s) are UP and HEALTHY", len(ids)), upTimeout, watch, func(ctx context.Context) error {
		nodes, err := core.GetNodes(ctx, c.ManagementClient(), "")
		if err != nil {
			return err
		}
		return c.healthProblems(nodes, ids)
	})
}

// ApproveNode approves the NEW node with ID id, which then joins the
// cluster (see WaitHealthy).
func (c *Cluster) ApproveNode(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, qemu.Timeout(callTimeout))
	defer cancel()
	n, err := core.GetNode(ctx, c.ManagementClient(), id)
	if err != nil {
		return err
	}
	if _, err := c.ManagementClient().ApproveNode(ctx, &apb.ApproveNodeRequest{Pubkey: n.Pubkey}); err != nil {
		return fmt.Errorf("approving %s: %w", c.describeNode(id), err)
	}
	return nil
}

// MakeConsensusMember gives the node with ID id the ConsensusMember role
// and waits until it is a full (voting) etcd member, which it becomes once
// it has caught up as a learner. The node's curator then also serves as an
// endpoint of the cluster (see MetroctlFlags).
func (c *Cluster) MakeConsensusMember(ctx context.Context, id string) error {
	s := c.beginStep("Making %s a consensus member", c.describeNode(id))
	var watch []*machine
	i := c.indexOf(id)
	if i >= 0 {
		watch = append(watch, c.machines[i])
	}
	enable := true
	// Right after a node came up or the leader moved, the role change can
	// fail for a moment; only a wrong request is final.
	err := c.poll(ctx, fmt.Sprintf("the cluster accepted %s as a consensus member", c.describeNode(id)), rolesRetryTimeout, watch, func(ctx context.Context) error {
		_, err := c.ManagementClient().UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{
			Node:            &apb.UpdateNodeRolesRequest_Id{Id: id},
			ConsensusMember: &enable,
		})
		switch status.Code(err) {
		case codes.InvalidArgument, codes.NotFound, codes.PermissionDenied, codes.Unauthenticated:
			return permanent(err)
		}
		return err
	})
	if err != nil {
		return err
	}
	curator := ipb.NewCuratorClient(c.conn)
	err = c.poll(ctx, fmt.Sprintf("%s is a full etcd member", c.describeNode(id)), consensusTimeout, watch, func(ctx context.Context) error {
		res, err := curator.GetConsensusStatus(ctx, &ipb.GetConsensusStatusRequest{})
		if err != nil {
			return err
		}
		for _, m := range res.EtcdMember {
			if m.Id != id {
				continue
			}
			if m.Status == ipb.GetConsensusStatusResponse_EtcdMember_STATUS_FULL {
				return nil
			}
			return fmt.Errorf("it is an etcd member with status %s", m.Status)
		}
		return errors.New("it is no etcd member yet")
	})
	if err != nil {
		return err
	}
	if i >= 0 {
		c.mu.Lock()
		c.consensus[i] = true
		c.mu.Unlock()
		if a := c.NodeAddress(i); a.IsValid() {
			c.resolver.AddEndpoint(resolver.NodeByHostPort(a.String(), node.CuratorServicePort))
		}
	}
	s.done()
	return nil
}

// DialNode connects to the NodeManagement service (logs, reboots) of a node,
// named by its ID or its address, authenticated as the owner and accepting
// only that node. The connection goes through the switch; the caller closes
// it.
func (c *Cluster) DialNode(ctx context.Context, idOrAddress string) (*grpc.ClientConn, error) {
	id, addr, err := c.locateNode(ctx, idOrAddress)
	if err != nil {
		return nil, err
	}
	creds := rpc.NewAuthenticatedCredentials(c.Owner, rpc.WantRemoteCluster(c.CA), rpc.WantRemoteNode(id))
	cc, err := grpc.NewClient("passthrough:///"+net.JoinHostPort(addr.String(), strconv.Itoa(node.NodeManagementPort)),
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(c.dial),
		rpc.ClientKeepalive(),
	)
	if err != nil {
		return nil, fmt.Errorf("connecting to node %s: %w", idOrAddress, err)
	}
	return cc, nil
}

// locateNode returns the ID and address of the node named by its ID or
// address: from what the launch learned for its own nodes, else from the
// cluster.
func (c *Cluster) locateNode(ctx context.Context, idOrAddress string) (string, netip.Addr, error) {
	if a, err := netip.ParseAddr(idOrAddress); err == nil {
		for i, id := range c.NodeIDs {
			if c.NodeAddress(i) == a && id != "" {
				return id, a, nil
			}
		}
		nodes, err := core.GetNodes(ctx, c.ManagementClient(), "node.status.external_address == "+strconv.Quote(a.String()))
		if err != nil {
			return "", netip.Addr{}, err
		}
		if len(nodes) == 0 {
			return "", netip.Addr{}, fmt.Errorf("no node of the cluster has address %s", a)
		}
		return nodes[0].Id, a, nil
	}
	id := idOrAddress
	if i := c.indexOf(id); i >= 0 {
		if a := c.NodeAddress(i); a.IsValid() {
			return id, a, nil
		}
	}
	n, err := core.GetNode(ctx, c.ManagementClient(), id)
	if err != nil {
		return "", netip.Addr{}, err
	}
	a, err := netip.ParseAddr(n.GetStatus().GetExternalAddress())
	if err != nil {
		return "", netip.Addr{}, fmt.Errorf("node %s has reported no address (it is %s)", id, stateName(n.State))
	}
	return id, a, nil
}

// WaitNodeStopped waits until node i's VM has ended by itself, as it does
// when the node powers off, and returns how it ended.
func (c *Cluster) WaitNodeStopped(ctx context.Context, i int) error {
	m, err := c.machine(i)
	if err != nil {
		return err
	}
	vm := m.running()
	if vm == nil {
		return nil
	}
	select {
	case <-vm.Done():
		return vm.Wait()
	case <-ctx.Done():
		return fmt.Errorf("waiting for node %d to stop: %w", i, ctx.Err())
	}
}
