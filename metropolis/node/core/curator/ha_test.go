package curator_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"metropolis.dev/metropolis/node/core/consensus"
	"metropolis.dev/metropolis/node/core/curator/curatortest"
	apb "metropolis.dev/metropolis/proto/api"
)

// TestLeaderFailover stops the leader's curator and checks that another
// takes over, and that a client connected through metropolis:///control
// follows it without being told.
func TestLeaderFailover(t *testing.T) {
	t.Parallel()
	c := curatortest.New(t, curatortest.Options{Curators: 3})
	ctx := testContext(t)
	mgmt := management(c)
	call := func() error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := mgmt.GetRegisterTicket(ctx, &apb.GetRegisterTicketRequest{})
		return err
	}
	if err := call(); err != nil {
		t.Fatalf("call before failover: %v", err)
	}

	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Followers point at the leader.
	for _, cur := range c.Curators {
		if cur == leader {
			continue
		}
		eventually(t, 10*time.Second, "follower points at leader", func() error {
			res, err := cur.CurrentLeader(ctx)
			if err != nil {
				return err
			}
			if res.LeaderNodeId != leader.Node.ID || res.LeaderHost != leader.Host || res.ThisNodeId != cur.Node.ID || res.LeaderPort != 7835 {
				return fmt.Errorf("curator %s reports %v, want leader %s at %s", cur.Host, res, leader.Node.ID, leader.Host)
			}
			return nil
		})
	}

	leader.StopCurator()
	stopped := time.Now()
	var next *curatortest.Curator
	eventually(t, 15*time.Second, "new leader elected", func() error {
		next, err = c.Leader(ctx)
		if err == nil && next == leader {
			err = errors.New("stopped curator still reported as leader")
		}
		return err
	})
	eventually(t, 15*time.Second-time.Since(stopped), "client follows new leader", call)
	t.Logf("new leader %s serving %v after the old one stopped", next.Host, time.Since(stopped))

	// The new leader also writes, and the old one rejoins as follower.
	addNode(t, ctx, c, curatortest.NodeOptions{})
	leader.StartCurator()
	eventually(t, 15*time.Second, "old leader follows", func() error {
		res, err := leader.CurrentLeader(ctx)
		if err != nil {
			return err
		}
		if res.LeaderNodeId != next.Node.ID {
			return fmt.Errorf("old leader reports leader %s, want %s", res.LeaderNodeId, next.Node.ID)
		}
		return nil
	})
}

// TestBackgroundSyncConsensus checks that the leader makes ConsensusMember
// roles follow etcd's membership, and removes members without a node.
func TestBackgroundSyncConsensus(t *testing.T) {
	t.Parallel()
	c := curatortest.New(t, curatortest.Options{})
	ctx := testContext(t)
	w := c.Curators[0].Consensus.Value().Watch()
	defer w.Close()
	st, err := w.Get(ctx, consensus.FilterRunning)
	if err != nil {
		t.Fatal(err)
	}
	mgmt := management(c)
	yes := true

	// A member without the role gets it.
	n := addNode(t, ctx, c, curatortest.NodeOptions{})
	if _, err := st.AddNode(ctx, n.ID, n.PublicKey(), n.Host); err != nil {
		t.Fatalf("adding etcd member: %v", err)
	}
	eventually(t, 20*time.Second, "ConsensusMember role added", func() error {
		if mustGetNode(t, ctx, c, n.ID).Roles.ConsensusMember == nil {
			return errors.New("no ConsensusMember role")
		}
		return nil
	})

	// A node with the role that is no member loses it, and the
	// KubernetesController role that depends on it.
	if _, err := mgmt.UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: &apb.UpdateNodeRolesRequest_Id{Id: n.ID}, KubernetesController: &yes}); err != nil {
		t.Fatal(err)
	}
	if err := st.RemoveNode(ctx, n.ID); err != nil {
		t.Fatalf("removing etcd member: %v", err)
	}
	eventually(t, 20*time.Second, "ConsensusMember role removed", func() error {
		roles := mustGetNode(t, ctx, c, n.ID).Roles
		if roles.ConsensusMember != nil || roles.KubernetesController != nil {
			return fmt.Errorf("roles %v left", roles)
		}
		return nil
	})

	// A member whose node was deleted is removed.
	m := addNode(t, ctx, c, curatortest.NodeOptions{})
	if _, err := mgmt.UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: &apb.UpdateNodeRolesRequest_Id{Id: m.ID}, ConsensusMember: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, err := mgmt.DeleteNode(ctx, &apb.DeleteNodeRequest{
		Node:                          &apb.DeleteNodeRequest_Id{Id: m.ID},
		SafetyBypassHasRoles:          &apb.DeleteNodeRequest_SafetyBypassHasRoles{},
		SafetyBypassNotDecommissioned: &apb.DeleteNodeRequest_SafetyBypassNotDecommissioned{},
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "member of deleted node removed", func() error {
		members, err := st.Members(ctx)
		if err != nil {
			return err
		}
		for _, mem := range members {
			if mem.NodeID == m.ID {
				return errors.New("still a member")
			}
		}
		return nil
	})
}
